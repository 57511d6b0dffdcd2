"""The statements of one trace batch, in each driver's fastest form, without doing any I/O.

The writer's cost per trace is paid in the gateway process, so it counts against throughput.
SQLAlchemy's compiled `insert()` processes every parameter of every row in Python; here rows
are plain tuples (`codec.trace_values`) and each table gets one driver call: SQLite multi-row
`VALUES` (and `executemany` where no rows come back), PostgreSQL one
`INSERT ... SELECT FROM unnest($1::text[], ...)` with a column array per parameter (the
statements themselves are made by `store.dialect`).

Statements are plain data (no I/O here), so the same ones run on an async connection
(`SqlTraceStore`) and on plain `sqlite3` in a thread (`store.offload`). A batch is two phases:
`trace_inserts`, whose `ON CONFLICT DO NOTHING RETURNING` says exactly which traces are new
(the thread writer asks with `existing` instead), then `follow_ups` (spans, usage) for those
only, so a replayed batch never adds its usage twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from opsgate.store import histogram
from opsgate.store.codec import span_values, trace_values
from opsgate.store.dialect import Row, Statement, dialect_of
from opsgate.store.tables.traces import spans, traces
from opsgate.store.usage_buckets import aggregate
from opsgate.store.usage_levels import fold
from opsgate.trace import TraceRecord

__all__ = [
    "Row",
    "Statement",
    "add",
    "execute_async",
    "existing",
    "follow_ups",
    "insert",
    "insert_new",
    "sqlite_in",
    "trace_inserts",
    "upsert_sql",
]


def trace_inserts(dialect: str, records: Sequence[TraceRecord]) -> list[Statement]:
    """The `traces` inserts; each returns the ids it stored (the ones that were new)."""
    return insert_new(dialect, traces, [trace_values(r) for r in records])


def follow_ups(dialect: str, fresh: Sequence[TraceRecord]) -> list[Statement]:
    """Spans and usage rows of the traces that were new."""
    if not fresh:
        return []
    statements = insert(dialect, spans, [row for r in fresh for row in span_values(r)])
    for level, rows in fold(aggregate(fresh)):  # keys sorted: a stable lock order
        statements += add(dialect, level.table, rows, level.key)
    return statements


async def execute_async(conn: AsyncConnection, statement: Statement) -> list[Row]:
    """Run one statement on an async connection; its rows if it returns any."""
    out = await conn.exec_driver_sql(statement.sql, statement.params)
    return [tuple(row) for row in out] if statement.returns else []


# -- statements --------------------------------------------------------------------------------


def insert_new(dialect: str, table: Table, rows: Sequence[Row]) -> list[Statement]:
    """Insert rows whose primary key (one column, first) is new, returning the new keys."""
    if not rows:
        return []
    pk = table.primary_key.columns[0].name
    tail = f"ON CONFLICT ({pk}) DO NOTHING RETURNING {pk}"
    return dialect_of(dialect).insert_rows(table, rows, tail, returns=True)


def insert(dialect: str, table: Table, rows: Sequence[Row]) -> list[Statement]:
    """Insert rows that cannot conflict."""
    return dialect_of(dialect).insert_rows(table, rows) if rows else []


def add(dialect: str, table: Table, rows: Sequence[Row], key: Sequence[str]) -> list[Statement]:
    """Upsert counters: a row whose `key` exists adds its other columns to the stored ones."""
    if not rows:
        return []
    return dialect_of(dialect).insert_rows(table, rows, _upsert_tail(dialect, table, tuple(key)))


def existing(table: Table, keys: Sequence[Any]) -> list[Statement]:
    """SQLite: which of `keys` the table already holds (the thread writer's replay check)."""
    pk = table.primary_key.columns[0].name
    return sqlite_in(f"SELECT {pk} FROM {table.name}", pk, keys)


def sqlite_in(select: str, column: str, keys: Sequence[Any]) -> list[Statement]:
    """`select` restricted to `column IN keys`, in as many statements as SQLite's limit on
    bound variables needs."""
    return dialect_of("sqlite").matching(select, column, keys)


@lru_cache(maxsize=16)
def upsert_sql(dialect: str, table: Table, key: tuple[str, ...]) -> str:
    """The counter upsert (`?` rows for SQLite, `$n` column arrays for PostgreSQL)."""
    return dialect_of(dialect).insert_sql(table, _upsert_tail(dialect, table, key))


@lru_cache(maxsize=16)
def _upsert_tail(dialect: str, table: Table, key: tuple[str, ...]) -> str:
    """Counters and sums add up; a usage table's least and greatest latency and its sketch
    merge (`store.histogram`)."""
    sets = ", ".join(
        f"{c.name} = {_merged(dialect, f'{table.name}.{c.name}', f'excluded.{c.name}', c.name)}"
        for c in table.columns
        if c.name not in key
    )
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


def _merged(dialect: str, old: str, new: str, column: str) -> str:
    sql = dialect_of(dialect)
    if column == "latency_ms_min":
        return f"{sql.least}({old}, {new})"
    if column == "latency_ms_max":
        return f"{sql.greatest}({old}, {new})"
    if column == "latency_sketch":
        return histogram.merge_sql(dialect, old, new)
    return f"{old} + {new}"
