"""Build the process's trace store from its database URL (phase two: runtime objects)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.store.db import is_sqlite_file
from opsgate.store.offload import SqliteThreadStore
from opsgate.store.repository import TraceStore
from opsgate.store.sql import SqlTraceStore


def build_trace_store(database_url: str, engine: AsyncEngine) -> TraceStore:
    """A SQLite file is written from a thread of its own (`store.offload`); PostgreSQL and an
    in-memory SQLite database (which a second engine could not see) from the loop. Reads always
    go through `engine`, which the caller owns."""
    reads = SqlTraceStore(engine)
    if is_sqlite_file(database_url):
        return SqliteThreadStore(database_url, reads=reads)
    return reads
