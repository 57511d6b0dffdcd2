"""Shared helpers for the wire-contract tests: golden files and stream replay.

Golden files live in `golden/`: an input transcript (`*.json`, `*.sse`) beside the output the
translation must give (`*.expected.json`). After an intended change, regenerate with
`OPSGATE_UPDATE_GOLDEN=1 pytest tests/providers` and review the diff like code.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from opsgate.chat import ChatChunk, ChatRequest

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("OPSGATE_UPDATE_GOLDEN") == "1"


class WireKit:
    """The helpers the wire tests share, handed out as the `wire` fixture."""

    golden = GOLDEN

    def read(self, name: str) -> bytes:
        return (GOLDEN / name).read_bytes()

    def check(self, name: str, actual: Any) -> None:
        """Compare with `golden/<name>.expected.json` (or write it, when updating)."""
        path = GOLDEN / f"{name}.expected.json"
        actual = json.loads(json.dumps(actual))  # only what a JSON file can hold
        if UPDATE:
            path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
            return
        assert path.exists(), f"{path.name} is missing; run with OPSGATE_UPDATE_GOLDEN=1"
        assert actual == json.loads(path.read_text()), f"translation differs from {path.name}"

    async def lines(self, raw: bytes) -> AsyncIterator[bytes]:
        """Body lines as `StreamResponse.lines()` yields them: no line endings."""
        for line in raw.splitlines():
            yield line

    def assemble(self, chunks: list[ChatChunk]) -> dict[str, Any]:
        """What a client rebuilds from a chunk stream (as the openai SDK's helpers do)."""
        content: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish: list[str] = []
        role = None
        for chunk in chunks:
            for choice in chunk.body.get("choices") or ():
                delta = choice.get("delta") or {}
                role = delta.get("role") or role
                content.append(delta.get("content") or "")
                for call in delta.get("tool_calls") or ():
                    slot = calls.setdefault(
                        call["index"], {"id": None, "name": "", "arguments": ""}
                    )
                    fn = call.get("function") or {}
                    slot["id"] = call.get("id") or slot["id"]
                    slot["name"] += fn.get("name") or ""
                    slot["arguments"] += fn.get("arguments") or ""
                if choice.get("finish_reason"):
                    finish.append(choice["finish_reason"])
        last = chunks[-1] if chunks else None
        usage = last.usage if last is not None and last.is_usage_only else None
        return {
            "role": role,
            "content": "".join(content),
            "tool_calls": [calls[i] for i in sorted(calls)],
            "finish_reasons": finish,
            "usage": usage.to_openai() if usage is not None else None,
        }

    def request(self, body: dict[str, Any]) -> ChatRequest:
        """A ChatRequest from an OpenAI request body, the way the API layer builds one."""
        params = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
        return ChatRequest(
            model=body["model"],
            messages=body["messages"],
            stream=bool(body.get("stream")),
            params=params,
        )


@pytest.fixture
def wire() -> WireKit:
    return WireKit()
