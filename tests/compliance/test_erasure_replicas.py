"""Erasure holds across replicas: traces of the erased end user that another replica still
holds (in its writer's queue, in its journal while its database was down, in a write
transaction in flight) never bring their data back. The other replica is a second writer on the
same database, written with the store a gateway would use (the thread writer on a SQLite file).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.compliance.runtime import ComplianceService
from opsgate.config.compliance import RetentionConfig
from opsgate.config.schema import Config
from opsgate.store import (
    SqlTraceStore,
    TraceRecord,
    TraceStore,
    TraceWriter,
    dispose_engine,
    make_engine,
)
from opsgate.store.batch import trace_inserts
from opsgate.store.db import is_sqlite_file
from opsgate.store.erasures import PG_LOCK_KEY, erasure_time
from opsgate.store.offload import SqliteThreadStore
from opsgate.store.tables.traces import traces, usage_minute
from tests.compliance.helpers import find_everywhere
from tests.store.conftest import Backend, dead_port, eventually, make_trace

ERASED = "eu-erase-replica-3d7e"
KEPT = "eu-keep-replica-8b10"


@dataclass
class Replica:
    """One gateway's share of the work: its trace writer and its compliance object."""

    engine: AsyncEngine
    writer: TraceWriter
    compliance: ComplianceService


def _store(url: str) -> tuple[TraceStore, AsyncEngine]:
    """The store `Gateway._trace_store` picks for the URL, and the engine it reads with."""
    reads = SqlTraceStore(make_engine(url))
    store = SqliteThreadStore(url, reads=reads) if is_sqlite_file(url) else reads
    return store, reads.engine


def _writer(store: TraceStore, journal: Path) -> TraceWriter:
    return TraceWriter(store, journal, flush_interval=0.05, retry_min=0.02, retry_max=0.2)


@pytest.fixture
async def replicas(backend: Backend, tmp_path: Path) -> AsyncIterator[Any]:
    """`await replica(name)`: a started replica on the test's database, closed afterwards."""
    made: list[tuple[Replica, AsyncEngine]] = []

    async def replica(name: str) -> Replica:
        engine = make_engine(backend.url)
        compliance = ComplianceService(
            Config.model_validate({}), engine, source="test", retention=RetentionConfig
        )
        store, reads = _store(backend.url)
        writer = _writer(store, tmp_path / f"{name}.jsonl")
        await writer.start()
        compliance.register_builtins(writer, None)
        made.append((Replica(engine, writer, compliance), reads))
        return made[-1][0]

    yield replica
    for r, reads in made:
        await r.writer.stop()
        if isinstance(r.writer.store, SqliteThreadStore):
            await r.writer.store.aclose()
        await dispose_engine(reads)
        await dispose_engine(r.engine)


def _trace(i: int, end_user: str, started_at: float) -> TraceRecord:
    return make_trace(i, end_user=end_user, started_at=started_at)


async def _of(engine: AsyncEngine, end_user: str) -> tuple[set[str], int]:
    """(stored trace ids, summed usage_minute requests) of one end user."""
    async with engine.connect() as conn:
        ids = await conn.execute(select(traces.c.trace_id).where(traces.c.end_user == end_user))
        used = await conn.execute(
            select(func.coalesce(func.sum(usage_minute.c.requests), 0)).where(
                usage_minute.c.end_user == end_user
            )
        )
        return {r[0] for r in ids}, int(used.scalar_one())


async def test_another_replicas_queue_does_not_bring_the_user_back(
    backend: Backend, replicas: Any
) -> None:
    here, there = await replicas("here"), await replicas("there")
    now = time.time()
    earlier = [_trace(i, ERASED, now - 100 + i) for i in range(5)]
    kept = [_trace(10 + i, KEPT, now - 50 + i) for i in range(3)]
    for record in earlier[:2]:
        here.writer.submit(record)
    for record in kept:
        there.writer.submit(record)
    await here.writer.flush()
    await there.writer.flush()

    first = await here.compliance.subjects.erase(ERASED)
    assert first.counts["traces"] == 2 and first.counts["usage_minute"] >= 1
    assert "erasures" not in first.counts and first.counts["journal"] == 0
    erased_at = await erasure_time(here.engine, ERASED)
    assert erased_at is not None and first.started_at <= erased_at <= first.completed_at

    # What the other replica still held, delivered after the erasure; the user also came back.
    returned = [_trace(20 + i, ERASED, erased_at + 0.001 * (i + 1)) for i in range(2)]
    for record in [*earlier[2:], *returned]:
        there.writer.submit(record)
    await there.writer.flush()
    assert there.writer.stats().spilled == 0
    assert await _of(here.engine, ERASED) == ({r.trace_id for r in returned}, len(returned))
    assert await _of(here.engine, KEPT) == ({r.trace_id for r in kept}, len(kept))

    second = await here.compliance.subjects.erase(ERASED)
    assert second.counts["traces"] == len(returned)
    later = await erasure_time(here.engine, ERASED)
    assert later is not None and later > erased_at
    for record in [*earlier, *returned]:  # every one of them again, as a journal replay would
        there.writer.submit(record)
    await there.writer.flush()
    assert await find_everywhere(backend.url, ERASED) == {}
    assert await _of(here.engine, KEPT) == ({r.trace_id for r in kept}, len(kept))


async def test_another_replicas_journal_replayed_after_the_erasure(
    backend: Backend, replicas: Any, tmp_path: Path
) -> None:
    """The other replica's database was down: its traces sit in its journal file, which this
    replica's erasure cannot reach, and are replayed once the database answers again."""
    now = time.time()
    earlier = [_trace(i, ERASED, now - 100 + i) for i in range(6)]
    kept = [_trace(10 + i, KEPT, now - 100 + i) for i in range(4)]
    journal = tmp_path / "there.jsonl"
    dead = make_engine(f"postgresql://postgres@127.0.0.1:{dead_port()}/gone")
    offline = _writer(SqlTraceStore(dead), journal)
    try:
        await offline.start()
        for record in [*earlier[2:], *kept]:
            offline.submit(record)
        await offline.stop()
    finally:
        await dispose_engine(dead)
    assert offline.stats().spilled == 8 and offline.journal.has_backlog()

    here = await replicas("here")
    for record in earlier[:2]:
        here.writer.submit(record)
    await here.writer.flush()
    receipt = await here.compliance.subjects.erase(ERASED)
    assert receipt.counts["traces"] == 2 and receipt.counts["journal"] == 0

    there = await replicas("there")  # the same journal file: it replays it on start
    await eventually(lambda: not there.writer.stats().journal_pending)
    assert there.writer.stats().replayed == 8
    assert not there.writer.journal.has_backlog()
    assert await find_everywhere(backend.url, ERASED) == {}
    assert await _of(here.engine, KEPT) == ({r.trace_id for r in kept}, len(kept))


class _WriteInFlight:
    """A trace write transaction held open by the test: on SQLite the write lock (as the thread
    writer's `BEGIN IMMEDIATE`), on PostgreSQL the writers' shared advisory lock."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None
        self._tx: Any = None

    async def begin(self, record: TraceRecord) -> None:
        if self.backend.name == "sqlite":
            path = make_url(self.backend.url).database
            assert path
            self._sqlite = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._sqlite.execute("BEGIN IMMEDIATE")
            for s in trace_inserts("sqlite", [record]):
                self._sqlite.execute(s.sql, s.params)
            return
        self._pg = await asyncpg.connect(self.backend.url)
        self._tx = self._pg.transaction()
        await self._tx.start()
        await self._pg.execute("SELECT pg_advisory_xact_lock_shared($1)", PG_LOCK_KEY)
        for s in trace_inserts("postgresql", [record]):
            await self._pg.execute(s.sql, *s.params)

    async def commit(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("COMMIT")
        else:
            await self._tx.commit()

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            await self._pg.close()


async def test_the_tombstone_waits_for_a_write_in_flight(backend: Backend, replicas: Any) -> None:
    """A write that began before the tombstone could not have seen it; the tombstone commits
    only after it, so the erasure's delete sweep (after the tombstone) finds its rows."""
    here = await replicas("here")
    write = _WriteInFlight(backend)
    try:
        await write.begin(_trace(1, ERASED, time.time() - 10))
        erasing = asyncio.create_task(here.compliance.subjects.erase(ERASED))
        await asyncio.sleep(0.3)
        assert not erasing.done()
        assert await erasure_time(here.engine, ERASED) is None
        await write.commit()
        receipt = await asyncio.wait_for(erasing, 30)
    finally:
        await write.close()
    assert receipt.counts["traces"] == 1
    assert await erasure_time(here.engine, ERASED) is not None
    assert await find_everywhere(backend.url, ERASED) == {}
