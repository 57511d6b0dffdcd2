"""JSONL uploads: each line one row, in our row form or in any of the export formats.

```json
{"messages": [...], "tools": [...], "output": "...", "reference": "...", "scores": {"thumbs": true},
 "metadata": {"source": "crm"}, "trace_id": "...", "end_user": "..."}
{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}
{"prompt": [...], "chosen": [...], "rejected": [...]}
{"input": [...], "reference": "..."}
```

An `openai-chat` line's last assistant message is the output; a `preference` line's chosen
answer is the reference and the rejected one the output; an `eval` line's input is the input.

A bad line refuses the whole upload (400 naming the line and the field); nothing is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from opsgate.errors import BadRequestError, PayloadTooLargeError
from opsgate.feedback.datasets.model import NewRow, new_id
from opsgate.feedback.datasets.rows import (
    RowContent,
    check_answer,
    check_messages,
    check_tools,
    seal,
)
from opsgate.identity import check_id
from opsgate.store.crypto import BodyCipher

MAX_LINE_BYTES = 1024 * 1024
MAX_IMPORT_BYTES = 256 * 1024 * 1024
MAX_IMPORT_ROWS = 200_000
_SCALARS = (bool, int, float, str)


@dataclass(frozen=True, slots=True)
class Imported:
    content: RowContent
    scores: dict[str, Any]
    metadata: dict[str, Any]
    trace_id: str | None
    end_user: str | None


async def lines(
    chunks: AsyncIterator[bytes], *, max_bytes: int = MAX_IMPORT_BYTES
) -> AsyncIterator[tuple[int, bytes]]:
    """(line number, line) for each non-blank line of a streamed body; 413 past the limits."""
    pending = b""
    number = total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLargeError(f"the upload is larger than the {max_bytes} bytes allowed")
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            number += 1
            if line.strip():
                yield number, line
        if len(pending) > MAX_LINE_BYTES:
            raise PayloadTooLargeError(
                f"line {number + 1} is longer than {MAX_LINE_BYTES} bytes",
                param=f"line {number + 1}",
            )
    if pending.strip():
        yield number + 1, pending


def parse_line(raw: bytes, number: int) -> Imported:
    where = f"line {number}"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(
            f"{where} is not JSON: {exc}", code="invalid_jsonl", param=where
        ) from None
    return parse_object(data, where)


def parse_object(data: Any, where: str) -> Imported:
    """One row given as a JSON value (a line, or an entry of an inline `rows` list)."""
    if not isinstance(data, dict):
        raise BadRequestError(f"{where} must be a JSON object", code="invalid_jsonl", param=where)
    return Imported(
        _content(data, where),
        _scores(data.get("scores"), where),
        _metadata(data.get("metadata"), where),
        _optional_id(data.get("trace_id"), f"{where}: trace_id"),
        _optional_id(data.get("end_user"), f"{where}: end_user"),
    )


def _content(data: dict[str, Any], where: str) -> RowContent:
    tools = check_tools(data.get("tools"), f"{where}: tools")
    if "prompt" in data:
        prompt = check_messages(data["prompt"], f"{where}: prompt")
        chosen = _single_answer(data.get("chosen"), f"{where}: chosen")
        rejected = _single_answer(data.get("rejected"), f"{where}: rejected")
        return RowContent(prompt, tools, rejected, chosen)
    key = "input" if "input" in data and "messages" not in data else "messages"
    messages = check_messages(data.get(key), f"{where}: {key}")
    output = check_answer(data.get("output"), f"{where}: output")
    reference = check_answer(data.get("reference"), f"{where}: reference")
    if output is None and reference is None and messages[-1].get("role") == "assistant":
        *messages, last = messages
        if not messages:
            raise BadRequestError(
                f"{where}: messages hold only an answer, no input",
                code="invalid_row",
                param=f"{where}: messages",
            )
        output = check_answer(last, f"{where}: messages[-1]")
    return RowContent(messages, tools, output, reference)


def _single_answer(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    answer = check_answer(value, where)
    if answer is None:
        raise BadRequestError(f"{where} is required", code="invalid_row", param=where)
    return answer


def _scores(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, _SCALARS) for k, v in value.items()
    ):
        raise BadRequestError(
            f"{where}: scores must map metric names to booleans, numbers or strings",
            code="invalid_row",
            param=f"{where}: scores",
        )
    return value


def _metadata(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 64:
        raise BadRequestError(
            f"{where}: metadata must be an object of at most 64 keys",
            code="invalid_row",
            param=f"{where}: metadata",
        )
    return value


def _optional_id(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"{where} must be a string", code="invalid_row", param=where)
    check_id(value, what=where, param=where)
    return value


def to_rows(parsed: list[Imported], cipher: BodyCipher | None, now: float) -> list[NewRow]:
    """Sealed rows for parsed lines (run in a worker thread: sealing costs CPU)."""
    rows = []
    for item in parsed:
        row_id = new_id("dr")
        rows.append(
            NewRow(
                id=row_id,
                body=seal(cipher, row_id, item.content),
                input_hash=item.content.input_hash(),
                has_output=item.content.output is not None,
                has_reference=item.content.reference is not None,
                created_at=now,
                source_trace_id=item.trace_id,
                end_user=item.end_user,
                model=_model(item.metadata),
                scores=item.scores,
                metadata=item.metadata,
            )
        )
    return rows


def _model(metadata: dict[str, Any]) -> str | None:
    model = metadata.get("model")
    return model if isinstance(model, str) else None
