"""The background writer: batches, outages, overflow, shutdown and restart lose no trace."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from opsgate.store import (
    MemoryTraceStore,
    SqlTraceStore,
    TraceRecord,
    TraceStore,
    TraceWriter,
    dispose_engine,
    make_engine,
)
from opsgate.store.codec import from_journal_line
from opsgate.store.tables.traces import traces, usage_minute
from tests.store.conftest import Backend, dead_port, eventually, make_trace
from tests.store.proxy import TcpProxy


def _writer(store: TraceStore, journal: Path, **options: Any) -> TraceWriter:
    """A writer with short intervals, so outages and replays resolve quickly in tests."""
    return TraceWriter(
        store, journal, **{"flush_interval": 0.05, "retry_min": 0.02, "retry_max": 0.2, **options}
    )


async def _stored(backend: Backend) -> tuple[int, int, int]:
    """(traces, summed usage requests, summed usage cost) read straight from the database."""
    engine = make_engine(backend.url)
    try:
        async with engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(traces))).scalar_one()
            sums = await conn.execute(
                select(
                    func.coalesce(func.sum(usage_minute.c.requests), 0),
                    func.coalesce(func.sum(usage_minute.c.cost_micros), 0),
                )
            )
            requests, cost = sums.one()
    finally:
        await dispose_engine(engine)
    return int(count), int(requests), int(cost)


def _cost(records: list[TraceRecord]) -> int:
    return sum(r.cost_micros for r in records)


def _journal_ids(*paths: Path) -> list[str]:
    lines = [line for p in paths if p.exists() for line in p.read_bytes().splitlines()]
    return [from_journal_line(line).trace_id for line in lines]


async def test_batches_by_size(tmp_path: Path) -> None:
    store = MemoryTraceStore()
    writer = _writer(store, tmp_path / "j.jsonl", batch_size=200)
    for i in range(450):
        writer.submit(make_trace(i))
    await writer.start()
    await writer.flush()
    assert [len(b) for b in store.batches] == [200, 200, 50]
    stats = writer.stats()
    assert (stats.written, stats.batches_written, stats.spilled, stats.queue_depth) == (
        450,
        3,
        0,
        0,
    )
    assert stats.batch_latency_avg_s >= 0
    await writer.stop()


async def test_batches_by_time(tmp_path: Path) -> None:
    store = MemoryTraceStore()
    writer = _writer(store, tmp_path / "j.jsonl", batch_size=200)
    await writer.start()
    writer.submit(make_trace(1))
    await eventually(lambda: store.batches)  # a lone trace does not wait for 199 more
    await writer.stop()
    assert store.batches == [["tr-000001"]]


async def test_outage_spills_to_the_journal_then_replays(tmp_path: Path) -> None:
    store = MemoryTraceStore()
    writer = _writer(store, tmp_path / "j.jsonl", batch_size=20)
    await writer.start()
    store.down = True
    records = [make_trace(i) for i in range(100)]
    for record in records:
        writer.submit(record)
    await writer.flush()
    assert writer.stats().spilled == 100
    assert not writer.stats().store_healthy
    assert store.traces == {}
    store.down = False
    await eventually(lambda: not writer.stats().journal_pending)
    assert len(store.traces) == 100
    assert writer.stats().replayed == 100
    assert writer.stats().store_healthy
    await writer.stop()
    assert not writer.journal.has_backlog()


async def test_a_full_queue_goes_to_the_journal_not_nowhere(tmp_path: Path) -> None:
    store = MemoryTraceStore()
    writer = _writer(store, tmp_path / "j.jsonl", capacity=10, batch_size=5)
    for i in range(100):
        writer.submit(make_trace(i))  # nothing drains yet: 90 overflow
    assert writer.stats().overflowed == 90
    await writer.start()
    await writer.flush()
    await eventually(lambda: not writer.stats().journal_pending)
    assert len(store.traces) == 100
    stats = writer.stats()
    assert (stats.spilled, stats.replayed, stats.dropped) == (90, 90, 0)
    await writer.stop()


async def test_refused_records_are_set_aside_and_the_rest_stored(tmp_path: Path) -> None:
    store = MemoryTraceStore(reject=lambda r: r.trace_id in {"tr-000003", "tr-000011"})
    writer = _writer(store, tmp_path / "j.jsonl", batch_size=16)
    await writer.start()
    for i in range(16):
        writer.submit(make_trace(i))
    await writer.flush()
    await writer.stop()
    assert len(store.traces) == 14
    assert writer.stats().rejected == 2
    assert sorted(_journal_ids(writer.journal.rejected)) == ["tr-000003", "tr-000011"]
    assert writer.stats().store_healthy


async def test_stop_journals_what_a_hung_store_holds(tmp_path: Path) -> None:
    class HungStore(MemoryTraceStore):
        async def write_batch(self, records: list[TraceRecord]) -> None:
            await asyncio.Event().wait()

    writer = _writer(HungStore(), tmp_path / "j.jsonl", batch_size=10)
    await writer.start()
    for i in range(35):
        writer.submit(make_trace(i))
    await writer.stop(timeout=0.2)
    kept = _journal_ids(writer.journal.path, writer.journal.replaying)  # replay may have rotated
    assert sorted(set(kept)) == [f"tr-{i:06d}" for i in range(35)]


async def test_submit_after_stop_is_journaled(tmp_path: Path) -> None:
    writer = _writer(MemoryTraceStore(), tmp_path / "j.jsonl")
    await writer.start()
    await writer.stop()
    writer.submit(make_trace(1))
    assert _journal_ids(writer.journal.path) == ["tr-000001"]


async def test_stop_drains_everything_to_the_database(backend: Backend, tmp_path: Path) -> None:
    engine = make_engine(backend.url)
    writer = _writer(SqlTraceStore(engine), tmp_path / "j.jsonl", batch_size=64)
    records = [make_trace(i) for i in range(500)]
    try:
        await writer.start()
        for record in records:
            writer.submit(record)
        await writer.stop(timeout=60)
    finally:
        await dispose_engine(engine)
    assert await _stored(backend) == (500, 500, _cost(records))
    assert writer.stats().spilled == 0
    assert not writer.journal.has_backlog()


async def test_journal_survives_a_restart(backend: Backend, tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    records = [make_trace(i) for i in range(300)]

    dead = make_engine(f"postgresql://postgres@127.0.0.1:{dead_port()}/gone")
    first = _writer(SqlTraceStore(dead), journal, batch_size=50)
    try:
        await first.start()
        for record in records:
            first.submit(record)
        await first.stop()
    finally:
        await dispose_engine(dead)
    assert first.stats().spilled == 300
    assert first.journal.has_backlog()

    live = make_engine(backend.url)
    second = _writer(SqlTraceStore(live), journal, batch_size=50)
    try:
        await second.start()
        await eventually(lambda: not second.stats().journal_pending)
        assert second.stats().replayed == 300
        await second.stop()
    finally:
        await dispose_engine(live)
    assert await _stored(backend) == (300, 300, _cost(records))
    assert not second.journal.has_backlog()


async def test_postgres_outage_loses_nothing(
    pg_backend: Backend, proxy: TcpProxy, tmp_path: Path
) -> None:
    """A real outage: the TCP path to PostgreSQL is cut, then restored (SQLite has no network;
    the memory-store tests cover the same writer logic)."""
    backend = pg_backend
    engine = make_engine(backend.url_via(proxy.port))
    writer = _writer(SqlTraceStore(engine), tmp_path / "j.jsonl", batch_size=50, write_timeout=10)
    records = [make_trace(i) for i in range(600)]
    try:
        await writer.start()
        for record in records[:100]:
            writer.submit(record)
        await writer.flush()
        assert (await _stored(backend))[0] == 100

        proxy.cut()
        for record in records[100:400]:
            writer.submit(record)
        await writer.flush()
        assert writer.stats().spilled == 300
        assert (await _stored(backend))[0] == 100

        proxy.restore()
        await eventually(lambda: not writer.stats().journal_pending)
        assert writer.stats().replayed == 300
        for record in records[400:]:
            writer.submit(record)
        await writer.stop(timeout=60)
    finally:
        await dispose_engine(engine)
    assert await _stored(backend) == (600, 600, _cost(records))
    stats = writer.stats()
    assert (stats.dropped, stats.rejected) == (0, 0)
    assert stats.failures >= 1
    assert not writer.journal.has_backlog()
