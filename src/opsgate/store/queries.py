"""Listing traces: filters, newest-first keyset pagination and an opaque cursor.

Offsets get slower with depth and skip or repeat rows while new traces keep arriving; a cursor
holding the last row's (started_at, trace_id) does neither, and each equality filter leads an
index with started_at, so a page costs the same on page one and page one thousand.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from sqlalchemy import ColumnElement, and_, or_

from opsgate.store.dialect import dialect_of
from opsgate.store.tables.traces import traces
from opsgate.trace import TraceRecord

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
STATUSES = ("ok", "error")
CACHE_HITS = ("hit-exact", "hit-semantic")
CACHE_FILTERS = ("hit", *CACHE_HITS, "miss", "bypass")
"""`hit` matches either kind of hit."""
MALFORMED = ("truncated", "invalid_json")
"""The values of a trace's `malformed` flag (evals/completions.py)."""

EQUALITY_FILTERS: tuple[tuple[str, str], ...] = (
    ("model", "model_requested"),
    ("deployment", "deployment"),
    ("key_id", "key_id"),
    ("team_id", "team_id"),
    ("end_user", "end_user"),
    ("session_id", "session_id"),
    ("status", "status"),
    ("prompt_name", "prompt_name"),
    ("prompt_version", "prompt_version"),
    ("prompt_label", "prompt_label"),
    ("malformed", "malformed"),
)
"""(`TraceQuery` field, `traces` column) pairs matched exactly."""

SUMMARY_COLUMNS = [c for c in traces.c if c.name not in ("request_body", "response_body")]
"""What a listing reads: everything but the bodies, which can be large and need an audit."""


class InvalidQueryError(ValueError):
    """A `TraceQuery` field holds a value no store can answer; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidCursorError(InvalidQueryError):
    """The cursor was not one this module handed out."""

    def __init__(self) -> None:
        super().__init__("cursor", "invalid cursor: pass next_cursor from a previous page")


def encode_cursor(started_at: float, trace_id: str) -> str:
    """An opaque, URL-safe token for "the rows after this one"."""
    raw = orjson.dumps([started_at, trace_id])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (started_at, trace_id) inside a cursor; `InvalidCursorError` for anything else."""
    try:
        padded = cursor.encode("ascii") + b"=" * (-len(cursor) % 4)
        value = orjson.loads(base64.b64decode(padded, altchars=b"-_", validate=True))
    except ValueError:  # bad ASCII, base64 or JSON are all ValueErrors
        raise InvalidCursorError() from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or isinstance(value[0], bool)
        or not isinstance(value[0], int | float)
        or not math.isfinite(value[0])
        or not isinstance(value[1], str)
    ):
        raise InvalidCursorError()
    return float(value[0]), value[1]


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """Which traces to list. Every filter given must match (AND); None means "any"."""

    since: float | None = None
    """Epoch seconds, inclusive."""
    until: float | None = None
    """Epoch seconds, exclusive."""
    model: str | None = None
    """The model the client asked for (`model_requested`)."""
    deployment: str | None = None
    key_id: str | None = None
    team_id: str | None = None
    end_user: str | None = None
    session_id: str | None = None
    status: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    """A version number, as text (the trace column's type)."""
    prompt_label: str | None = None
    malformed: str | None = None
    """One of `MALFORMED`: answers flagged truncated or invalid_json."""
    cache: str | None = None
    """One of `CACHE_FILTERS`."""
    min_duration_ms: float | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    """(key, value) pairs the trace's metadata must all contain."""
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    """`TracePage.next_cursor` of the previous page."""

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidQueryError("limit", f"limit must be between 1 and {MAX_LIMIT}")
        if self.status is not None and self.status not in STATUSES:
            raise InvalidQueryError("status", f"status must be one of {', '.join(STATUSES)}")
        if self.malformed is not None and self.malformed not in MALFORMED:
            raise InvalidQueryError("malformed", f"malformed must be one of {', '.join(MALFORMED)}")
        if self.cache is not None and self.cache not in CACHE_FILTERS:
            raise InvalidQueryError("cache", f"cache must be one of {', '.join(CACHE_FILTERS)}")
        if self.cursor is not None:
            decode_cursor(self.cursor)

    @property
    def after(self) -> tuple[float, str] | None:
        """The last row of the previous page, or None on the first page."""
        return decode_cursor(self.cursor) if self.cursor is not None else None

    def equalities(self) -> Iterable[tuple[str, str]]:
        """(column, value) for each exact-match filter that is set."""
        for name, column in EQUALITY_FILTERS:
            value = getattr(self, name)
            if value is not None:
                yield column, value


@dataclass(frozen=True, slots=True)
class TracePage:
    """One page, newest first; `next_cursor` is None on the last page."""

    items: list[TraceRecord]
    """Summaries: the stored records without bodies and without spans."""
    next_cursor: str | None


def summary(record: TraceRecord) -> TraceRecord:
    """A copy of `record` as a listing returns it: no bodies, no spans."""
    return copy.deepcopy(
        dataclasses.replace(record, request_body=None, response_body=None, spans=[])
    )


def matches(record: TraceRecord, query: TraceQuery) -> bool:
    """`query`'s filters, cursor included, applied in Python (the memory store's `WHERE`)."""
    if query.since is not None and record.started_at < query.since:
        return False
    if query.until is not None and record.started_at >= query.until:
        return False
    if any(getattr(record, column) != value for column, value in query.equalities()):
        return False
    if query.cache is not None and record.cache not in _cache_values(query.cache):
        return False
    if query.min_duration_ms is not None and record.duration_ms < query.min_duration_ms:
        return False
    if any(record.metadata.get(k) != v for k, v in query.metadata):
        return False
    after = query.after
    return after is None or (record.started_at, record.trace_id) < after


def page(rows: list[TraceRecord], query: TraceQuery) -> TracePage:
    """Cut a page from up to `limit + 1` matching rows, newest first (the extra one says
    whether another page exists)."""
    items = rows[: query.limit]
    more = len(rows) > query.limit
    cursor = encode_cursor(items[-1].started_at, items[-1].trace_id) if more else None
    return TracePage(items, cursor)


def _cache_values(cache: str) -> tuple[str, ...]:
    return CACHE_HITS if cache == "hit" else (cache,)


def where(query: TraceQuery, dialect: str) -> list[ColumnElement[bool]]:
    """The SQL conditions for `query`, cursor included, on `dialect` (sqlite or postgresql)."""
    c = traces.c
    conditions: list[ColumnElement[bool]] = [c[col] == value for col, value in query.equalities()]
    if query.since is not None:
        conditions.append(c.started_at >= query.since)
    if query.until is not None:
        conditions.append(c.started_at < query.until)
    if query.cache is not None:
        conditions.append(c.cache.in_(_cache_values(query.cache)))
    if query.min_duration_ms is not None:
        conditions.append(c.duration_ms >= query.min_duration_ms)
    sql = dialect_of(dialect)
    conditions.extend(sql.json_has(c.metadata, key, value) for key, value in query.metadata)
    after = query.after
    if after is not None:
        started_at, trace_id = after
        conditions.append(
            or_(c.started_at < started_at, and_(c.started_at == started_at, c.trace_id < trace_id))
        )
    return conditions
