"""Loading many synthetic traces fast, with exactly the rows `SqlTraceStore.write_batch` writes.

Rows come from the store's own code: `codec.trace_values` / `codec.span_values` for `traces` and
`spans`, `usage.aggregate` + `usage.fold` for the usage tables. Only the way they reach the
database differs: one `sqlite3` `executemany` per table and chunk (synchronous=OFF while
loading), or asyncpg's binary `COPY` on PostgreSQL, instead of `write_batch`'s statements.
Each chunk covers its own whole minutes, so its `usage_minute` buckets are complete and never
collide with another chunk's; hours and days are shared between chunks, so those rows are
upserted with the store's own statements (`batch.upsert_sql`, `batch.add` on PostgreSQL).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Double, Table

from opsgate.store.batch import add, upsert_sql
from opsgate.store.codec import SPAN_COLUMNS, TRACE_COLUMNS, span_values, trace_values
from opsgate.store.tables.traces import usage_minute
from opsgate.store.usage_buckets import aggregate
from opsgate.store.usage_levels import LEVELS, fold
from opsgate.trace import TraceRecord

USAGE_COLUMNS = tuple(c.name for c in usage_minute.columns)
ROLLUPS = tuple(level for level in LEVELS if level.table is not usage_minute)

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Rows:
    traces: list[Row]
    spans: list[Row]
    usage: list[Row]
    rollups: dict[str, list[Row]]
    """Hour and day rows by table; upserted, as chunks share hours and days."""


def to_rows(records: Sequence[TraceRecord]) -> Rows:
    """The tables' rows for `records` (which must cover whole minutes on their own)."""
    by_table = {
        level.table.name: [_floats(row, _doubles(level.table)) for row in rows]
        for level, rows in fold(aggregate(records))
    }
    return Rows(
        traces=[trace_values(r) for r in records],
        spans=[row for r in records for row in span_values(r)],
        usage=by_table.pop(usage_minute.name),
        rollups=by_table,
    )


def _doubles(table: Table) -> frozenset[int]:
    return frozenset(i for i, c in enumerate(table.columns) if isinstance(c.type, Double))


def _floats(row: Row, doubles: frozenset[int]) -> Row:
    """Float columns as floats also where a sum stayed at the int 0 (COPY is strict)."""
    return tuple(float(v) if i in doubles else v for i, v in enumerate(row))


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'


class SqliteLoader:
    """Plain `sqlite3` on the database file; one transaction per chunk."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute("PRAGMA cache_size=-262144")  # 256 MiB while loading
        self._sql = {
            "traces": _insert_sql("traces", TRACE_COLUMNS),
            "spans": _insert_sql("spans", SPAN_COLUMNS),
            "usage_minute": _insert_sql("usage_minute", USAGE_COLUMNS),
            **{level.table.name: upsert_sql("sqlite", level.table, level.key) for level in ROLLUPS},
        }

    def load(self, rows: Rows) -> None:
        cur = self._conn.cursor()
        cur.execute("BEGIN")
        cur.executemany(self._sql["traces"], rows.traces)
        cur.executemany(self._sql["spans"], rows.spans)
        cur.executemany(self._sql["usage_minute"], rows.usage)
        for table, values in rows.rollups.items():
            cur.executemany(self._sql[table], values)
        cur.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


class PgLoader:
    """asyncpg `COPY ... FROM STDIN (FORMAT binary)`; one transaction per chunk."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        """An `asyncpg.Connection` (asyncpg ships no type hints)."""

    @classmethod
    async def open(cls, url: str) -> PgLoader:
        return cls(await asyncpg.connect(url))

    async def load(self, rows: Rows) -> None:
        async with self._conn.transaction():
            await self._conn.copy_records_to_table(
                "traces", records=rows.traces, columns=TRACE_COLUMNS
            )
            await self._conn.copy_records_to_table(
                "spans", records=rows.spans, columns=SPAN_COLUMNS
            )
            await self._conn.copy_records_to_table(
                "usage_minute", records=rows.usage, columns=USAGE_COLUMNS
            )
            for level in ROLLUPS:
                values = rows.rollups[level.table.name]
                for statement in add("postgresql", level.table, values, level.key):
                    await self._conn.execute(statement.sql, *statement.params)

    async def analyze(self) -> float:
        """VACUUM ANALYZE (what autovacuum does to a settled table); returns seconds."""
        began = time.perf_counter()
        for table in ("traces", "spans", *(level.table.name for level in LEVELS)):
            await self._conn.execute(f"VACUUM ANALYZE {table}")
        return time.perf_counter() - began

    async def close(self) -> None:
        await self._conn.close()


async def check_same_rows(records: Sequence[TraceRecord]) -> None:
    """Write `records` once through `SqlTraceStore.write_batch` and once through the bulk path
    (two temp SQLite files) and raise unless every table holds the same rows."""
    from opsgate.store import SqlTraceStore, make_engine
    from opsgate.store.db import dispose_engine
    from opsgate.store.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="bench-bulk-check-") as tmp:
        honest, bulk = Path(tmp) / "honest.db", Path(tmp) / "bulk.db"
        for path in (honest, bulk):
            await upgrade(f"sqlite:///{path}")
        engine = make_engine(f"sqlite:///{honest}")
        try:
            await SqlTraceStore(engine).write_batch(list(records))
        finally:
            await dispose_engine(engine)
        loader = SqliteLoader(bulk)
        loader.load(to_rows(records))
        loader.close()
        for table in ("traces", "spans", *(level.table.name for level in LEVELS)):
            if _dump(honest, table) != _dump(bulk, table):
                raise RuntimeError(f"bulk load and write_batch disagree on table {table}")


def _dump(path: Path, table: str) -> list[Row]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
    finally:
        conn.close()
