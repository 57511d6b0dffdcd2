"""`TraceStore` on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

The two dialects differ only in where `INSERT ... ON CONFLICT` comes from; both support
`ON CONFLICT DO NOTHING RETURNING`, which tells exactly which traces are new, so replaying a batch
never counts a trace twice in `usage_minute`, even with several replicas replaying at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import ColumnElement, Table, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.store.codec import span_from_row, span_rows, trace_from_row, trace_row
from opsgate.store.errors import RecordRejectedError, StoreUnavailableError
from opsgate.store.queries import SUMMARY_COLUMNS, TracePage, TraceQuery, page, where
from opsgate.store.records import TraceRecord
from opsgate.store.schema import USAGE_COUNTERS, USAGE_KEY, USAGE_SUMS, spans, traces, usage_minute
from opsgate.store.usage import UsageQuery, UsageRow, aggregate, bucket_rows, minute_of, usage_row

_UNAVAILABLE: tuple[type[Exception], ...] = (OSError, TimeoutError, SQLAlchemyError)
_CAUGHT: tuple[type[Exception], ...] = (*_UNAVAILABLE, TypeError, ValueError, OverflowError)


_DATA_SQLSTATE_CLASSES = ("22", "23")  # data exception, integrity constraint violation
_DATA_ERRORS = (IntegrityError, DataError, TypeError, ValueError, OverflowError)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The error, the driver error it wraps, and what caused those."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def _is_refused_data(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, _DATA_ERRORS):
            return True
        if isinstance(cause, StatementError) and not isinstance(cause, DBAPIError):
            return True  # failed while binding parameters, before reaching the database
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _DATA_SQLSTATE_CLASSES:
            return True
    return False


def translate(exc: BaseException) -> Exception:
    """Map a driver error onto the store's two kinds: refused data, or an unreachable database."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return StoreUnavailableError(str(exc))
    if _is_refused_data(exc):
        return RecordRejectedError(str(exc))
    return StoreUnavailableError(f"{type(exc).__name__}: {exc}")


class SqlTraceStore:
    """Traces, spans and usage buckets in the tables of `opsgate.store.schema`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        if dialect == "postgresql":
            self._insert: Callable[[Table], Any] = postgresql.insert
        elif dialect == "sqlite":
            self._insert = sqlite.insert
        else:
            raise ValueError(f"unsupported database dialect {dialect!r}")

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def write_batch(self, records: list[TraceRecord]) -> None:
        if not records:
            return
        unique: dict[str, TraceRecord] = {}
        for record in records:
            unique.setdefault(record.trace_id, record)
        ordered = [unique[trace_id] for trace_id in sorted(unique)]  # stable lock order
        try:
            async with self._engine.begin() as conn:
                await self._write(conn, ordered)
        except _CAUGHT as exc:
            raise translate(exc) from exc

    async def _write(self, conn: AsyncConnection, records: list[TraceRecord]) -> None:
        insert_traces = (
            self._insert(traces)
            .on_conflict_do_nothing(index_elements=[traces.c.trace_id])
            .returning(traces.c.trace_id)
        )
        result = await conn.execute(insert_traces, [trace_row(r) for r in records])
        inserted = {row[0] for row in result}
        new = [r for r in records if r.trace_id in inserted]
        if not new:
            return
        span_values = [row for r in new for row in span_rows(r)]
        if span_values:
            await conn.execute(spans.insert(), span_values)
        upsert = self._insert(usage_minute)
        upsert = upsert.on_conflict_do_update(
            index_elements=[usage_minute.c[name] for name in USAGE_KEY],
            set_={
                name: usage_minute.c[name] + upsert.excluded[name]
                for name in (*USAGE_COUNTERS, *USAGE_SUMS)
            },
        )
        await conn.execute(upsert, bucket_rows(aggregate(new)))

    async def get(self, trace_id: str) -> TraceRecord | None:
        try:
            async with self._engine.connect() as conn:
                found = await conn.execute(select(traces).where(traces.c.trace_id == trace_id))
                row = found.mappings().first()
                if row is None:
                    return None
                span_result = await conn.execute(
                    select(spans).where(spans.c.trace_id == trace_id).order_by(spans.c.position)
                )
                span_list = [span_from_row(dict(r)) for r in span_result.mappings()]
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        return trace_from_row(dict(row), span_list)

    async def list_traces(self, query: TraceQuery) -> TracePage:
        stmt = (
            select(*SUMMARY_COLUMNS)
            .where(*where(query, self._engine.dialect.name))
            .order_by(traces.c.started_at.desc(), traces.c.trace_id.desc())
            .limit(query.limit + 1)
        )
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        return page([trace_from_row(dict(row), []) for row in rows], query)

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        minute = usage_minute.c.minute
        # The step is inlined (it is an int): PostgreSQL only matches GROUP BY expressions whose
        # parameters are the same placeholder.
        bucket = (minute - minute % literal_column(str(int(query.step)))).label("bucket")
        dims = [usage_minute.c[name] for name in query.group_by]
        names = (*USAGE_COUNTERS, *USAGE_SUMS)
        sums = [func.sum(usage_minute.c[name]).label(name) for name in names]
        where: list[ColumnElement[bool]] = [
            minute >= minute_of(query.since),
            minute < math.ceil(query.until),
            *(usage_minute.c[dim] == value for dim, value in query.filters.items()),
        ]
        stmt = select(bucket, *dims, *sums).where(*where).group_by(bucket, *dims)
        stmt = stmt.order_by(bucket, *dims)
        try:
            async with self._engine.connect() as conn:
                result = (await conn.execute(stmt)).mappings().all()
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        return [
            usage_row(
                int(row["bucket"]),
                {name: str(row[name]) for name in query.group_by},
                {name: row[name] for name in names},
            )
            for row in result
        ]
