"""`TraceStore` on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

Writes go through `store.batch` (each driver's fast path); both dialects support
`ON CONFLICT DO NOTHING RETURNING`, which tells exactly which traces are new, so replaying a batch
never counts a trace twice in the usage tables, even with several replicas replaying at once.
A batch with end users also drops, in the same transaction, the traces of erased end users that
began before their erasure (`store.erasures`), before their spans and usage are written.
Rollups read the coarsest usage table that answers exactly (`usage_levels.plan`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    cast,
    delete,
    func,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.store import erasures
from opsgate.store.batch import execute_async, follow_ups, trace_inserts
from opsgate.store.codec import span_from_row, trace_from_row
from opsgate.store.dialect import dialect_of
from opsgate.store.errors import RecordRejectedError, StoreUnavailableError
from opsgate.store.histogram import decode
from opsgate.store.queries import SUMMARY_COLUMNS, TracePage, TraceQuery, page, where
from opsgate.store.tables.traces import spans, traces
from opsgate.store.usage import VALUES, UsageQuery, UsageRow, usage_rows
from opsgate.store.usage_levels import plan
from opsgate.trace import TraceRecord

_UNAVAILABLE: tuple[type[Exception], ...] = (OSError, TimeoutError, SQLAlchemyError)
CAUGHT: tuple[type[Exception], ...] = (*_UNAVAILABLE, TypeError, ValueError, OverflowError)
"""What a write may raise that `translate` turns into the store's own errors."""


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


def dedupe(records: list[TraceRecord]) -> list[TraceRecord]:
    """One record per trace id, ordered by id: a stable lock order across replicas."""
    unique: dict[str, TraceRecord] = {}
    for record in records:
        unique.setdefault(record.trace_id, record)
    return [unique[trace_id] for trace_id in sorted(unique)]


def translate(exc: BaseException) -> Exception:
    """Map a driver error onto the store's two kinds: refused data, or an unreachable database."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return StoreUnavailableError(str(exc))
    if _is_refused_data(exc):
        return RecordRejectedError(str(exc))
    return StoreUnavailableError(f"{type(exc).__name__}: {exc}")


class SqlTraceStore:
    """Traces, spans and usage buckets in the tables of `opsgate.store.tables.traces`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = dialect_of(engine.dialect.name).name  # ValueError if unsupported

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def aclose(self) -> None:
        """Nothing to release: the engine belongs to the caller."""

    async def write_batch(self, records: list[TraceRecord]) -> None:
        if not records:
            return
        try:
            async with self._engine.begin() as conn:
                await self._write(conn, dedupe(records))
        except CAUGHT as exc:
            raise translate(exc) from exc

    async def _write(self, conn: AsyncConnection, records: list[TraceRecord]) -> None:
        users = erasures.subjects(records)
        if users:
            for lock in erasures.write_lock(self._dialect):
                await execute_async(conn, lock)
        new: set[str] = set()
        for statement in trace_inserts(self._dialect, records):
            new.update(row[0] for row in await execute_async(conn, statement))
        if users:
            new -= await self._drop_erased(conn, records, new, users)
        for statement in follow_ups(self._dialect, [r for r in records if r.trace_id in new]):
            await execute_async(conn, statement)

    async def _drop_erased(
        self,
        conn: AsyncConnection,
        records: list[TraceRecord],
        new: set[str],
        users: dict[str, str],
    ) -> set[str]:
        """Delete the new traces of erased end users that began before their erasure; their
        ids. Asked after the inserts: aiosqlite opens the transaction (and SQLite's write lock)
        at the first write, so a check before it would run outside; on PostgreSQL the shared
        advisory lock taken first covers the check wherever it runs (store/erasures.py)."""
        rows = [
            row
            for s in erasures.lookup(self._dialect, list(users))
            for row in await execute_async(conn, s)
        ]
        if not rows:
            return set()
        erased = erasures.erased_at(users, rows)
        gone = [r.trace_id for r in records if r.trace_id in new and erasures.is_erased(r, erased)]
        if gone:
            await conn.execute(delete(traces).where(traces.c.trace_id.in_(gone)))
        return set(gone)

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
        stmt = _usage_statement(query, self._dialect)
        if stmt is None:
            return []
        try:
            async with self._engine.connect() as conn:
                result = (await conn.execute(stmt)).all()
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        # columns: bucket, the group's dimensions, VALUES, then least, greatest and sketches
        dims, end = 1 + len(query.group_by), 1 + len(query.group_by) + len(VALUES)
        keys: list[tuple[int, dict[str, str]]] = [
            (int(row[0]), dict(zip(query.group_by, map(str, row[1:dims]), strict=True)))
            for row in result
        ]
        latencies = decode(
            [r[end + 2] for r in result], [r[end] for r in result], [r[end + 1] for r in result]
        )
        return usage_rows(keys, [row[dims:end] for row in result], latencies)


def _total(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """SUM, kept a 64-bit integer for integer columns: PostgreSQL widens SUM(bigint) to
    numeric, which asyncpg hands back as one `Decimal` per value (thousands per rollup)."""
    total = func.sum(column)
    if isinstance(column.type, BigInteger):
        return cast(total, BigInteger).label(column.key)
    return total.label(column.key)


def _latency(table: Any, dialect: str) -> list[ColumnElement[Any]]:
    """Least, greatest, and every row's sketch text joined by commas (merged in Python:
    `histogram.decode` sums a bin named more than once)."""
    sketch = table.c.latency_sketch
    joined = dialect_of(dialect).joined_text(sketch, ",")
    return [
        func.min(table.c.latency_ms_min).label("latency_ms_min"),
        func.max(table.c.latency_ms_max).label("latency_ms_max"),
        joined.label("latency_sketch"),
    ]


def _usage_statement(query: UsageQuery, dialect: str) -> Select[Any] | None:
    """The rollup as SQL: one grouped SELECT per planned segment, summed again on top."""
    # The step is inlined (it is an int): PostgreSQL only matches GROUP BY expressions whose
    # parameters are the same placeholder.
    step: ColumnElement[int] = literal_column(str(int(query.step)))
    parts = []
    for segment in plan(query):
        table = segment.level.table
        period = table.c[segment.level.period]
        bucket = (period - period % step).label("bucket")
        dims = [table.c[name] for name in query.group_by]
        where: list[ColumnElement[bool]] = [
            period >= segment.start,
            period < segment.end,
            *(table.c[dim] == value for dim, value in query.filters.items()),
        ]
        sums = [_total(table.c[name]) for name in VALUES]
        latency = _latency(table, dialect)
        parts.append(select(bucket, *dims, *sums, *latency).where(*where).group_by(bucket, *dims))
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0].order_by(text("bucket"), *(text(n) for n in query.group_by))
    merged = union_all(*parts).subquery()
    keys = [merged.c.bucket, *(merged.c[name] for name in query.group_by)]
    totals = [_total(merged.c[name]) for name in VALUES]
    latency = _latency(merged, dialect)
    return select(*keys, *totals, *latency).group_by(*keys).order_by(*keys)
