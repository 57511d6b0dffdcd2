"""Dataset rows for an eval run, streamed one at a time (a 100k-row file keeps memory flat).

Sources: a JSONL file (the CLI) and inline rows (the admin API), opened by `open_dataset`;
stored datasets (`dataset: {name: support, version: 3}`, the feedback part's datasets) need
the database and are opened by `runs/stored.py` `open_stored`. A source yields its rows from
a plain or an async iterator; `each_row` reads either.

A row that cannot be used (not JSON, no input) is still yielded, with `error` set: the run
marks it failed with the reason and goes on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from opsgate.evals.runs.spec import DatasetSpec, EvalSpecError, FieldNames


@dataclass(frozen=True, slots=True)
class DatasetRow:
    index: int
    id: str | None = None
    input: str | None = None
    messages: list[dict[str, Any]] | None = None
    variables: dict[str, Any] | None = None
    expected: str | None = None
    context: str | None = None
    row: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class DatasetSource(Protocol):
    ref: str

    def rows(self) -> Iterator[DatasetRow] | AsyncIterator[DatasetRow]:
        """The rows in order, each with its 0-based `index` (the key a run resumes by)."""
        ...


async def each_row(source: DatasetSource) -> AsyncIterator[DatasetRow]:
    rows = source.rows()
    if isinstance(rows, AsyncIterator):
        async for row in rows:
            yield row
    else:
        for row in rows:
            yield row


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _last_user(messages: list[dict[str, Any]]) -> str | None:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return None


def parse_row(index: int, line: str, names: FieldNames) -> DatasetRow:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return DatasetRow(index, error=f"line {index + 1}: not JSON ({exc.msg})")
    if not isinstance(row, dict):
        return DatasetRow(index, error=f"line {index + 1}: not a JSON object")
    messages = row.get(names.messages)
    if messages is not None and not (
        isinstance(messages, list) and all(isinstance(m, dict) for m in messages)
    ):
        return DatasetRow(index, row=row, error=f"`{names.messages}` must be a list of messages")
    variables = row.get(names.variables)
    if variables is not None and not isinstance(variables, dict):
        return DatasetRow(index, row=row, error=f"`{names.variables}` must be an object")
    text = _text(row.get(names.input))
    if text is None and messages:
        text = _last_user(messages)
    if text is None and messages is None and variables is None:
        return DatasetRow(
            index, row=row, error=f"row has no `{names.input}`, `{names.messages}` or variables"
        )
    ident = row.get(names.id)
    return DatasetRow(
        index,
        None if ident is None else str(ident),
        text,
        messages,
        variables,
        _text(row.get(names.expected)),
        _text(row.get(names.context)),
        row,
    )


class JsonlDataset:
    """One JSON object per line; blank lines are skipped (and not counted)."""

    def __init__(self, path: Path, names: FieldNames, limit: int | None = None) -> None:
        self.path = path
        self.ref = str(path)
        self.names = names
        self.limit = limit

    def rows(self) -> Iterator[DatasetRow]:
        index = 0
        try:
            with self.path.open(encoding="utf-8") as file:
                for line in file:
                    if not line.strip():
                        continue
                    if self.limit is not None and index >= self.limit:
                        return
                    yield parse_row(index, line, self.names)
                    index += 1
        except (OSError, UnicodeDecodeError) as exc:
            raise EvalSpecError(f"cannot read dataset {self.path}: {exc}") from None


class InlineDataset:
    """Rows sent in the request (the admin API); stored with the run's spec, so it resumes."""

    def __init__(self, rows: list[dict[str, Any]], names: FieldNames, limit: int | None) -> None:
        self.rows_given = rows[:limit] if limit else rows
        self.ref = f"inline ({len(self.rows_given)} rows)"
        self.names = names

    def rows(self) -> Iterator[DatasetRow]:
        for index, row in enumerate(self.rows_given):
            yield parse_row(index, json.dumps(row), self.names)


def open_dataset(spec: DatasetSpec, *, files: bool = True) -> DatasetSource:
    """The rows of a file or inline spec; `files=False` (the admin API) refuses server files.
    A stored dataset (`name`) is opened with `open_stored` (it needs the database)."""
    if spec.rows is not None:
        return InlineDataset(spec.rows, spec.fields, spec.limit)
    if spec.file is not None and not files:
        raise EvalSpecError(
            "the admin API does not read files on the server: send `dataset: {rows: [...]}`"
        )
    if spec.file is not None:
        path = Path(spec.file)
        if not path.is_file():
            raise EvalSpecError(f"dataset file {path} does not exist")
        return JsonlDataset(path, spec.fields, spec.limit)
    raise EvalSpecError(f"stored dataset {spec.ref} needs the database: use open_stored")
