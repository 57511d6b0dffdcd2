"""The statements of one trace batch, in each driver's fastest form, without doing any I/O.

The writer's cost per trace is paid in the gateway process, so it counts against throughput.
SQLAlchemy's compiled `insert()` processes every parameter of every row in Python; here rows
are plain tuples (`codec.trace_values`) and each table gets one driver call: SQLite multi-row
`VALUES` (and `executemany` where no rows come back), PostgreSQL one
`INSERT ... SELECT FROM unnest($1::text[], ...)` with a column array per parameter.

Statements are plain data (no I/O here), so the same ones run on an async connection
(`SqlTraceStore`) and on plain `sqlite3` in a thread (`store.offload`). A batch is two phases:
`trace_inserts`, whose `ON CONFLICT DO NOTHING RETURNING` says exactly which traces are new
(the thread writer asks with `existing` instead), then `follow_ups` (spans, usage) for those
only, so a replayed batch never adds its usage twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Double, Integer, LargeBinary, String, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from opsgate.store import histogram
from opsgate.store.codec import span_values, trace_values
from opsgate.store.tables.traces import spans, traces
from opsgate.store.usage import aggregate, fold
from opsgate.trace import TraceRecord

Row = tuple[Any, ...]
Params = tuple[Any, ...] | list[Row]

SQLITE_MAX_VARIABLES = 32_766
"""SQLite's default bound on `?` parameters in one statement (3.32 and later)."""


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    params: Params
    """One tuple of parameters, or a list of row tuples for `executemany`."""
    returns: bool = False
    """Whether the caller wants the returned rows sent back."""


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
    if dialect == "postgresql":
        sql = f"INSERT INTO {table.name} ({_columns(table)}) {_pg_select(table)} {tail}"
        return [Statement(sql, _transpose(rows), returns=True)]
    return _sqlite_chunks(table, rows, tail, returns=True)


def insert(dialect: str, table: Table, rows: Sequence[Row]) -> list[Statement]:
    """Insert rows that cannot conflict."""
    if not rows:
        return []
    if dialect == "postgresql":
        sql = f"INSERT INTO {table.name} ({_columns(table)}) {_pg_select(table)}"
        return [Statement(sql, _transpose(rows))]
    return _sqlite_chunks(table, rows)


def add(dialect: str, table: Table, rows: Sequence[Row], key: Sequence[str]) -> list[Statement]:
    """Upsert counters: a row whose `key` exists adds its other columns to the stored ones."""
    if not rows:
        return []
    if dialect == "postgresql":
        return [Statement(upsert_sql(dialect, table, tuple(key)), _transpose(rows))]
    return _sqlite_chunks(table, rows, _upsert_tail(dialect, table, tuple(key)))


def existing(table: Table, keys: Sequence[Any]) -> list[Statement]:
    """SQLite: which of `keys` the table already holds (the thread writer's replay check)."""
    pk = table.primary_key.columns[0].name
    return sqlite_in(f"SELECT {pk} FROM {table.name}", pk, keys)


def sqlite_in(select: str, column: str, keys: Sequence[Any]) -> list[Statement]:
    """`select` restricted to `column IN keys`, in as many statements as SQLite's limit on
    bound variables needs."""
    statements = []
    for start in range(0, len(keys), SQLITE_MAX_VARIABLES):
        chunk = tuple(keys[start : start + SQLITE_MAX_VARIABLES])
        marks = ", ".join("?" * len(chunk))
        statements.append(Statement(f"{select} WHERE {column} IN ({marks})", chunk, returns=True))
    return statements


def _sqlite_chunks(
    table: Table, rows: Sequence[Row], tail: str = "", *, returns: bool = False
) -> list[Statement]:
    """Multi-row VALUES statements within SQLite's parameter bound: one `sqlite3_step` each,
    where `executemany` steps (and releases and retakes the GIL) once per row."""
    per_statement = max(1, SQLITE_MAX_VARIABLES // len(table.columns))
    statements = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        sql = f"{_sqlite_values(table, len(chunk))} {tail}".rstrip()
        params = tuple(itertools.chain.from_iterable(chunk))
        statements.append(Statement(sql, params, returns=returns))
    return statements


@lru_cache(maxsize=16)
def upsert_sql(dialect: str, table: Table, key: tuple[str, ...]) -> str:
    """The counter upsert (`?` rows for SQLite, `$n` column arrays for PostgreSQL)."""
    tail = _upsert_tail(dialect, table, key)
    if dialect == "postgresql":
        return f"INSERT INTO {table.name} ({_columns(table)}) {_pg_select(table)} {tail}"
    return f"{_sqlite_values(table, 1)} {tail}"


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
    pg = dialect == "postgresql"
    if column == "latency_ms_min":
        return f"{'least' if pg else 'min'}({old}, {new})"
    if column == "latency_ms_max":
        return f"{'greatest' if pg else 'max'}({old}, {new})"
    if column == "latency_sketch":
        return histogram.merge_sql(dialect, old, new)
    return f"{old} + {new}"


def _columns(table: Table) -> str:
    return ", ".join(c.name for c in table.columns)


@lru_cache(maxsize=64)
def _sqlite_values(table: Table, count: int) -> str:
    one = "(" + ", ".join("?" * len(table.columns)) + ")"
    return f"INSERT INTO {table.name} ({_columns(table)}) VALUES {', '.join([one] * count)}"


def _pg_array_type(column_type: Any) -> tuple[str, str]:
    """(array type of the parameter, cast applied to each element) for a column type."""
    if isinstance(column_type, JSON):
        return "text[]", "::jsonb"  # sent as JSON text, stored as jsonb
    for kind, name in (
        (Boolean, "bool"),
        (BigInteger, "int8"),
        (Integer, "int4"),
        (Double, "float8"),
        (LargeBinary, "bytea"),
        (String, "text"),
    ):
        if isinstance(column_type, kind):
            return f"{name}[]", ""
    raise TypeError(f"no PostgreSQL array type for {column_type!r}")


@lru_cache(maxsize=16)
def _pg_select(table: Table) -> str:
    """`SELECT <casts> FROM unnest($1::t1[], $2::t2[], ...) AS u(<columns>)`."""
    arrays, picks = [], []
    for position, column in enumerate(table.columns, start=1):
        array, cast = _pg_array_type(column.type)
        arrays.append(f"${position}::{array}")
        picks.append(f"{column.name}{cast}")
    return f"SELECT {', '.join(picks)} FROM unnest({', '.join(arrays)}) AS u({_columns(table)})"


def _transpose(rows: Sequence[Row]) -> tuple[list[Any], ...]:
    return tuple(list(column) for column in zip(*rows, strict=True))
