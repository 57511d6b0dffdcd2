"""SQLite writes on the store's own thread: stored for the readers, errors reach the writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from opsgate.store import (
    MemoryTraceStore,
    RecordRejectedError,
    SqlTraceStore,
    StoreUnavailableError,
    dispose_engine,
    make_engine,
)
from opsgate.store.migrate import upgrade
from opsgate.store.offload import SqliteThreadStore
from opsgate.store.usage import UsageQuery
from tests.store.conftest import make_trace


async def _store(path: Path) -> tuple[SqliteThreadStore, SqlTraceStore]:
    url = f"sqlite:///{path}"
    await upgrade(url)
    reads = SqlTraceStore(make_engine(url))
    return SqliteThreadStore(url, reads=reads), reads


async def test_thread_writes_match_the_async_store(tmp_path: Path) -> None:
    store, reads = await _store(tmp_path / "threaded.db")
    memory = MemoryTraceStore()
    try:
        records = [make_trace(i) for i in range(120)]
        for batch in (records[:70], records[50:]):  # the overlap is a replay: counted once
            await store.write_batch(batch)
            await memory.write_batch(batch)
        got = await store.get(records[7].trace_id)
        assert got is not None and got.spans == records[7].spans
        for step in (60, 3600, 86400):
            query = UsageQuery(since=0, until=2e9, step=step, group_by=("model", "key_id"))
            assert await store.usage(query) == await memory.usage(query)
    finally:
        await store.aclose()
        await dispose_engine(reads.engine)


async def test_missing_tables_are_an_outage_and_closed_store_refuses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    reads = SqlTraceStore(make_engine(url))
    store = SqliteThreadStore(url, reads=reads)
    try:
        with pytest.raises(StoreUnavailableError):
            await store.write_batch([make_trace(1)])
    finally:
        await store.aclose()
        await dispose_engine(reads.engine)
    with pytest.raises(StoreUnavailableError):
        await store.write_batch([make_trace(2)])


async def test_refused_rows_are_rejections(tmp_path: Path) -> None:
    store, reads = await _store(tmp_path / "strict.db")
    conn = sqlite3.connect(tmp_path / "strict.db")
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON traces WHEN NEW.model_requested = 'bad' "
        "BEGIN SELECT RAISE(ABORT, 'constraint failed: refused'); END"
    )
    conn.commit()
    conn.close()
    try:
        with pytest.raises((RecordRejectedError, StoreUnavailableError)):
            await store.write_batch([make_trace(1, model_requested="bad")])
        await store.write_batch([make_trace(2)])
        assert await store.get("tr-000002") is not None
    finally:
        await store.aclose()
        await dispose_engine(reads.engine)
