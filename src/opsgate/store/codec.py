"""Conversions between `TraceRecord` and its stored forms: database rows and journal JSON.

Values are made safe once here: text loses NUL characters and unencodable surrogates, JSON fields
are serialised without failing (non-JSON values become strings). PostgreSQL refuses all of
those, and one refused record must not hold a whole batch back.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import operator
from typing import Any

import orjson
from sqlalchemy import JSON, String, Table

from opsgate.store.tables.traces import spans, traces
from opsgate.trace import SpanRecord, TraceRecord

JOURNAL_VERSION = 1

_TRACE_FIELDS = frozenset(f.name for f in dataclasses.fields(TraceRecord))
_SPAN_FIELDS = frozenset(f.name for f in dataclasses.fields(SpanRecord))
_BODY_FIELDS = ("request_body", "response_body")


def body_json(raw: bytes | None) -> dict[str, str] | None:
    """A stored body as JSON: text when it is UTF-8 (it nearly always is), else base64."""
    if raw is None:
        return None
    try:
        return {"encoding": "utf-8", "data": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "data": base64.b64encode(raw).decode("ascii")}


def clean_text(value: str) -> str:
    """Text any database accepts: no NUL, valid UTF-8."""
    if value.isascii():  # the common case, checked in C
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def dump_json(value: Any) -> bytes:
    """Serialize anything to JSON bytes without failing: unknown types become strings."""
    try:
        raw = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        raw = json.dumps(value, default=str, ensure_ascii=True).encode()
    return raw.replace(b"\\u0000", b"\\ufffd")


def _column_kinds(table: Table) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
    """(column names, positions of text columns, positions of JSON columns) of `table`."""
    names = tuple(c.name for c in table.columns)
    text = tuple(i for i, c in enumerate(table.columns) if isinstance(c.type, String))
    json_ = tuple(i for i, c in enumerate(table.columns) if isinstance(c.type, JSON))
    return names, text, json_


TRACE_COLUMNS, _TRACE_TEXT, _TRACE_JSON = _column_kinds(traces)
SPAN_COLUMNS, _SPAN_TEXT, _SPAN_JSON = _column_kinds(spans)
_trace_getter = operator.attrgetter(*TRACE_COLUMNS)
# `span_values` builds each row as (trace_id, position, *the span's own fields).
assert SPAN_COLUMNS[:2] == ("trace_id", "position"), SPAN_COLUMNS
_span_getter = operator.attrgetter(*SPAN_COLUMNS[2:])


def _clean_values(
    values: list[Any], text: tuple[int, ...], json_: tuple[int, ...]
) -> tuple[Any, ...]:
    for i in text:
        if values[i] is not None:
            values[i] = clean_text(values[i])
    for i in json_:
        values[i] = dump_json(values[i]).decode()
    return tuple(values)


def trace_values(record: TraceRecord) -> tuple[Any, ...]:
    """The `traces` row as a tuple in `TRACE_COLUMNS` order, JSON columns as JSON text.

    The batch writer's fast path: no per-row dicts, no SQLAlchemy type processing.
    """
    return _clean_values(list(_trace_getter(record)), _TRACE_TEXT, _TRACE_JSON)


def span_values(record: TraceRecord) -> list[tuple[Any, ...]]:
    """The `spans` rows of a record as tuples in `SPAN_COLUMNS` order."""
    trace_id = record.trace_id
    return [
        _clean_values([trace_id, position, *_span_getter(span)], _SPAN_TEXT, _SPAN_JSON)
        for position, span in enumerate(record.spans)
    ]


def span_from_row(row: dict[str, Any]) -> SpanRecord:
    return SpanRecord(**{k: v for k, v in row.items() if k in _SPAN_FIELDS})


def trace_from_row(row: dict[str, Any], spans: list[SpanRecord]) -> TraceRecord:
    fields = {k: v for k, v in row.items() if k in _TRACE_FIELDS and k != "spans"}
    for name in _BODY_FIELDS:
        if fields.get(name) is not None:
            fields[name] = bytes(fields[name])
    return TraceRecord(**fields, spans=spans)


def to_journal_line(record: TraceRecord) -> bytes:
    """One JSONL line (with its newline); bodies travel as base64."""
    data = dataclasses.asdict(record)
    for name in _BODY_FIELDS:
        if data[name] is not None:
            data[name] = base64.b64encode(data[name]).decode("ascii")
    return dump_json({"v": JOURNAL_VERSION, "trace": data}) + b"\n"


def from_journal_line(line: bytes) -> TraceRecord:
    """Parse a journal line; raises ValueError when the line is not a trace."""
    try:
        envelope = orjson.loads(line)
        data = dict(envelope["trace"])
        for name in _BODY_FIELDS:
            if data.get(name) is not None:
                data[name] = base64.b64decode(data[name], validate=True)
        spans = [
            SpanRecord(**{k: v for k, v in span.items() if k in _SPAN_FIELDS})
            for span in data.pop("spans", [])
        ]
        fields = {k: v for k, v in data.items() if k in _TRACE_FIELDS}
        return TraceRecord(**fields, spans=spans)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a journal trace line: {exc}") from exc
