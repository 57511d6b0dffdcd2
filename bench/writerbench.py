"""Trace-writer throughput: how many traces per second reach the database.

Two measurements per backend, each over fresh records (new ids, so nothing is skipped as a
duplicate):

- `TraceWriter` end to end: `submit` every record as fast as the queue takes them (the producer
  yields to the loop after each 200 and waits while the queue is full, so nothing overflows to
  the journal), then `flush`: records / (first submit -> flush done).
- `SqlTraceStore.write_batch` alone, batches of 200 back to back: the store's own ceiling.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.dbs import Backend
from bench.measure import Progress
from bench.stats import median
from bench.synthetic import DAY, TraceFactory
from opsgate.store import SqlTraceStore, TraceRecord, TraceWriter, make_engine
from opsgate.store.db import dispose_engine
from opsgate.store.migrate import upgrade

BATCH = 200
ROUND_LIMIT_S = 60.0
"""A round stops submitting after this long (a slow database must not stall the run)."""


@dataclass(frozen=True, slots=True)
class WriterResult:
    backend: str
    writer_rps: tuple[float, ...]
    """TraceWriter end to end, records/s per round."""
    batch_rps: tuple[float, ...]
    """SqlTraceStore.write_batch(200) back to back, records/s per round."""
    submit_us: float
    """Median cost of one `submit` call on the request path, µs."""
    records: int
    """Records per round."""
    overflowed: int
    spilled: int

    @property
    def writer_median(self) -> float:
        return median(self.writer_rps)

    @property
    def batch_median(self) -> float:
        return median(self.batch_rps)


def chunks(records: Sequence[TraceRecord], size: int) -> Iterator[Sequence[TraceRecord]]:
    for i in range(0, len(records), size):
        yield records[i : i + size]


async def _writer_round(
    store: SqlTraceStore, records: list[TraceRecord], journal: Path
) -> tuple[float, float, int, int]:
    """(records/s, µs per submit, overflowed, spilled) for one pass through a new TraceWriter."""
    writer = TraceWriter(store, journal, batch_size=BATCH)
    await writer.start()
    capacity = writer.stats().queue_capacity
    submit_s, sent = 0.0, 0
    began = time.perf_counter()
    deadline = began + ROUND_LIMIT_S
    try:
        for chunk in chunks(records, BATCH):
            # The writer has no "room again" event to wait on: poll its queue depth.
            while writer.stats().queue_depth > capacity - len(chunk):  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            if time.perf_counter() > deadline:
                break
            t = time.perf_counter()
            for record in chunk:
                writer.submit(record)
            submit_s += time.perf_counter() - t
            sent += len(chunk)
            await asyncio.sleep(0)
        await writer.flush()
        elapsed = time.perf_counter() - began
    finally:
        await writer.stop()
    stats = writer.stats()
    if stats.written < sent:
        raise RuntimeError(f"writer wrote {stats.written} of {sent} traces: {stats}")
    return sent / elapsed, submit_s / sent * 1e6, stats.overflowed, stats.spilled


async def _batch_round(store: SqlTraceStore, records: list[TraceRecord]) -> float:
    began = time.perf_counter()
    deadline = began + ROUND_LIMIT_S
    sent = 0
    for chunk in chunks(records, BATCH):
        await store.write_batch(list(chunk))
        sent += len(chunk)
        if time.perf_counter() > deadline:
            break
    return sent / (time.perf_counter() - began)


async def _run_backend(
    backend: Backend, records: int, rounds: int, factory: TraceFactory, progress: Progress | None
) -> WriterResult:
    await upgrade(backend.url)
    engine = make_engine(backend.url)
    store = SqlTraceStore(engine)
    writer_rps: list[float] = []
    batch_rps: list[float] = []
    submit_us: list[float] = []
    overflowed = spilled = 0
    now = time.time()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
            await store.write_batch(factory.between(BATCH, now - DAY, now))  # warm the pool
            for k in range(rounds):
                if progress:
                    progress(f"trace writer {backend.name} round {k + 1}/{rounds} ({records:,})")
                batch = factory.between(records, now - DAY, now)
                rps, us, over, spill = await _writer_round(store, batch, Path(tmp) / f"j{k}")
                writer_rps.append(rps)
                submit_us.append(us)
                overflowed, spilled = overflowed + over, spilled + spill
                batch_rps.append(
                    await _batch_round(store, factory.between(records, now - DAY, now))
                )
    finally:
        await dispose_engine(engine)
    return WriterResult(
        backend.name,
        tuple(writer_rps),
        tuple(batch_rps),
        median(submit_us),
        records,
        overflowed,
        spilled,
    )


def run_writer(
    backends: Sequence[Backend],
    records: int = 10_000,
    rounds: int = 3,
    progress: Progress | None = None,
) -> list[WriterResult]:
    factory = TraceFactory(seed=1)
    return [asyncio.run(_run_backend(b, records, rounds, factory, progress)) for b in backends]
