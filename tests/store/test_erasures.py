"""Erasure tombstones in the trace store's writes: on SQLite (through aiosqlite and on the
writer thread) and PostgreSQL, a write drops an erased end user's traces that began at or
before the erasure, spans and usage included, and keeps everything else."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select, text

from opsgate.audit import pseudonym
from opsgate.store import (
    MemoryTraceStore,
    SqlTraceStore,
    StoreUnavailableError,
    TraceRecord,
    TraceStore,
    dispose_engine,
    make_engine,
)
from opsgate.store.erasures import PG_LOCK_KEY, erasure_time, record_erasure
from opsgate.store.migrate import upgrade
from opsgate.store.offload import SqliteThreadStore
from opsgate.store.tables.traces import erasures, spans, traces
from opsgate.store.usage import UsageQuery
from tests.store.conftest import Backend, _pg_database, make_trace

GONE = "eu-gone-71c2"
OTHER = "eu-other-05ad"
T = 1_700_000_600.0  # the erasure; make_trace starts traces between T - 600 and T + 7200


@dataclasses.dataclass
class Target:
    backend: Backend
    store: TraceStore

    @property
    def url(self) -> str:
        return self.backend.url


@pytest.fixture(params=["sqlite", "sqlite-thread", "postgresql"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    """A migrated database and the store a gateway would write it with (or the async one)."""
    if request.param == "postgresql":
        async with _pg_database() as backend:
            await upgrade(backend.url)
            reads = SqlTraceStore(make_engine(backend.url))
            try:
                yield Target(backend, reads)
            finally:
                await dispose_engine(reads.engine)
        return
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'opsgate.db'}")
    await upgrade(backend.url)
    reads = SqlTraceStore(make_engine(backend.url))
    thread = request.param == "sqlite-thread"
    store: TraceStore = SqliteThreadStore(backend.url, reads=reads) if thread else reads
    try:
        yield Target(backend, store)
    finally:
        if isinstance(store, SqliteThreadStore):
            await store.aclose()
        await dispose_engine(reads.engine)


def _trace(i: int, end_user: str | None, started_at: float) -> TraceRecord:
    record = make_trace(i, end_user=end_user, started_at=started_at)
    for span in record.spans:
        span.started_at = started_at
    return record


async def _ids(url: str) -> tuple[set[str], set[str]]:
    """(trace ids, trace ids that have spans) stored."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            stored = {r[0] for r in await conn.execute(select(traces.c.trace_id))}
            spanned = {r[0] for r in await conn.execute(select(spans.c.trace_id))}
    finally:
        await dispose_engine(engine)
    return stored, spanned


async def test_writes_drop_what_began_before_the_erasure(target: Target) -> None:
    engine = make_engine(target.url)
    try:
        assert await record_erasure(engine, GONE, lambda: T) == T
    finally:
        await dispose_engine(engine)
    before = [_trace(i, GONE, T - 60 * i) for i in range(1, 6)]
    at_erasure = [_trace(10, GONE, T)]
    after = [_trace(i, GONE, T + 60 * (i - 19)) for i in range(20, 24)]
    others = [_trace(30 + i, OTHER if i % 2 else None, T - 60 * i) for i in range(6)]
    kept = after + others
    batch = [*before, *at_erasure, *after[:2], *others, *after[2:]]

    await target.store.write_batch(batch)
    await target.store.write_batch(batch)  # a replay of the same batch: still dropped, no double
    memory = MemoryTraceStore()
    await memory.write_batch(kept)

    stored, spanned = await _ids(target.url)
    assert stored == spanned == {r.trace_id for r in kept}
    for step in (60, 3600, 86400):
        query = UsageQuery(since=0, until=2e9, step=step, group_by=("end_user", "model"))
        assert await target.store.usage(query) == await memory.usage(query), step
    users = UsageQuery(since=0, until=2e9, step=86400, filters={"end_user": GONE})
    assert sum(r.requests for r in await target.store.usage(users)) == len(after)


async def test_a_later_erasure_moves_the_tombstone_forward(target: Target) -> None:
    engine = make_engine(target.url)
    try:
        await record_erasure(engine, GONE, lambda: T)
        await record_erasure(engine, GONE, lambda: T + 100)
        assert await erasure_time(engine, GONE) == T + 100
        await record_erasure(engine, GONE, lambda: T + 50)  # a clock behind: never backwards
        assert await erasure_time(engine, GONE) == T + 100
        assert await erasure_time(engine, OTHER) is None
        async with engine.connect() as conn:
            rows = (await conn.execute(select(erasures))).all()
    finally:
        await dispose_engine(engine)
    assert [tuple(r) for r in rows] == [(pseudonym("end_user", GONE), T + 100)]

    await target.store.write_batch([_trace(1, GONE, T + 99), _trace(2, GONE, T + 101)])
    assert (await _ids(target.url))[0] == {"tr-000002"}


async def test_batches_without_end_users_never_ask_for_tombstones(target: Target) -> None:
    """Shown by taking the table away: only a batch with end users needs it."""
    engine = make_engine(target.url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE erasures"))
    finally:
        await dispose_engine(engine)
    await target.store.write_batch([_trace(i, None, T) for i in range(5)])
    with pytest.raises(StoreUnavailableError):
        await target.store.write_batch([_trace(9, GONE, T)])
    assert (await _ids(target.url))[0] == {f"tr-{i:06d}" for i in range(5)}


async def test_postgres_writes_wait_for_a_tombstone_being_written() -> None:
    """The other side of the lock: while an erasure holds it, a batch with end users waits
    (and then sees the tombstone); a batch without end users does not wait."""
    async with _pg_database() as backend:
        await upgrade(backend.url)
        engine = make_engine(backend.url)
        store = SqlTraceStore(engine)
        erasing = await asyncpg.connect(backend.url)
        try:
            tx = erasing.transaction()
            await tx.start()
            await erasing.execute("SELECT pg_advisory_xact_lock($1)", PG_LOCK_KEY)
            await erasing.execute(
                "INSERT INTO erasures (subject, erased_at) VALUES ($1, $2)",
                pseudonym("end_user", GONE),
                T,
            )
            await asyncio.wait_for(store.write_batch([_trace(1, None, T)]), 30)
            blocked = asyncio.create_task(store.write_batch([_trace(2, GONE, T - 1)]))
            await asyncio.sleep(0.3)
            assert not blocked.done()
            await tx.commit()
            await asyncio.wait_for(blocked, 30)
        finally:
            await erasing.close()
            await dispose_engine(engine)
        assert (await _ids(backend.url))[0] == {"tr-000001"}


async def test_sqlite_thread_writer_rebuilds_only_when_something_is_dropped(
    tmp_path: Path,
) -> None:
    """A tombstone of a user who came back (all traces after it) drops nothing; one the batch
    falls under drops exactly those traces, within a batch already partly stored (a replay)."""
    url = f"sqlite:///{tmp_path / 'opsgate.db'}"
    await upgrade(url)
    reads = SqlTraceStore(make_engine(url))
    store = SqliteThreadStore(url, reads=reads)
    try:
        await record_erasure(reads.engine, GONE, lambda: T)
        back = [_trace(i, GONE, T + i) for i in range(1, 4)]
        await store.write_batch(back)
        late = [_trace(10 + i, GONE, T - i) for i in range(3)]
        await store.write_batch([*back, *late, _trace(20, OTHER, T - 5)])
    finally:
        await store.aclose()
        await dispose_engine(reads.engine)
    conn = sqlite3.connect(tmp_path / "opsgate.db")
    try:
        stored = {r[0] for r in conn.execute("SELECT trace_id FROM traces")}
        requests = conn.execute("SELECT sum(requests) FROM usage_minute").fetchone()[0]
    finally:
        conn.close()
    assert stored == {r.trace_id for r in back} | {"tr-000020"}
    assert requests == 4
