"""The background trace writer: the hot path hands over a record and never waits for storage.

`submit` puts the record on a bounded in-memory queue (or, when that is full, on an overflow list
that a task moves to the journal) and returns at once. A drain task writes batches to the store;
when the store is unreachable, batches go to the fsync'd journal and a replay task re-sends the
journal once the store answers again. Every accepted record ends in exactly one of: the store,
the journal, the dead-letter file (data the database refuses), or the `dropped` count (only when
even the journal cannot be written) — never nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from opsgate.store.errors import RecordRejectedError, StoreUnavailableError
from opsgate.store.journal import Journal
from opsgate.store.repository import TraceStore
from opsgate.trace import TraceRecord

log = logging.getLogger("opsgate.store.writer")


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot for metrics; counts are records unless named after batches."""

    queue_depth: int
    queue_capacity: int
    overflow_depth: int
    """Records waiting to be moved to the journal because the queue was full."""
    submitted: int
    written: int
    """Records the store accepted (replays included; duplicates the store skipped, and traces of
    erased end users it dropped (store/erasures.py), included)."""
    batches_written: int
    batch_latency_last_s: float
    batch_latency_avg_s: float
    failures: int
    """Store writes that failed because the store was unavailable."""
    overflowed: int
    """Records that found the queue full."""
    spilled: int
    """Records appended to the journal (queue full, store down, or shutdown)."""
    replayed: int
    """Journal records re-sent to the store successfully."""
    rejected: int
    """Records the database refused, kept in the dead-letter file."""
    dropped: int
    """Records lost because the journal itself could not be written. Alert on any."""
    corrupt_journal_lines: int
    store_healthy: bool
    journal_pending: bool
    """Whether the journal may hold records not yet replayed (the store is behind)."""


@dataclass(slots=True)
class _Counters:
    submitted: int = 0
    written: int = 0
    batches: int = 0
    latency_last: float = 0.0
    latency_total: float = 0.0
    failures: int = 0
    overflowed: int = 0
    spilled: int = 0
    replayed: int = 0
    rejected: int = 0
    dropped: int = 0


class TraceWriter:
    """Moves traces from the request path into a `TraceStore`, losing none."""

    def __init__(
        self,
        store: TraceStore,
        journal: str | Path,
        *,
        capacity: int = 10_000,
        batch_size: int = 200,
        flush_interval: float = 0.5,
        write_timeout: float = 30.0,
        retry_min: float = 0.5,
        retry_max: float = 30.0,
        seal: Callable[[TraceRecord], TraceRecord] | None = None,
    ) -> None:
        if capacity < 1 or batch_size < 1:
            raise ValueError("capacity and batch_size must be at least 1")
        self.store = store
        self.journal = Journal(journal)
        self._queue: asyncio.Queue[TraceRecord | None] = asyncio.Queue(capacity)
        self._capacity = capacity
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._write_timeout = write_timeout
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._seal = seal
        """Encrypts bodies as a record leaves memory (store/crypto.py `seal_record`)."""
        self._overflow: list[TraceRecord] = []
        self._overflow_ready = asyncio.Event()
        self._overflow_idle = asyncio.Event()
        self._overflow_idle.set()
        self._replay_wanted = asyncio.Event()
        self._inflight: list[TraceRecord] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._stopped = False
        self._healthy = True
        self._journal_pending = True  # until the first replay has looked
        self._n = _Counters()

    # -- the hot path -----------------------------------------------------------------------

    def submit(self, record: TraceRecord) -> None:
        """Hand a trace over; never blocks, never awaits, never raises."""
        try:
            self._n.submitted += 1
            if self._stopped:
                self._spill_after_stop(record)
                return
            try:
                self._queue.put_nowait(record)
            except asyncio.QueueFull:
                self._n.overflowed += 1
                self._overflow.append(record)
                self._overflow_idle.clear()
                self._overflow_ready.set()
        except Exception:
            self._n.dropped += 1
            log.exception("trace %s dropped: submit failed", getattr(record, "trace_id", "?"))

    def _spill_after_stop(self, record: TraceRecord) -> None:
        """Nothing drains after stop, so write straight to the journal (shutdown only)."""
        log.warning("trace %s submitted after the writer stopped; journaling", record.trace_id)
        self.journal.append_sync([self._sealed(record)])
        self._n.spilled += 1

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start draining, and replay whatever journal a previous run left behind."""
        if self._tasks or self._stopped:
            return
        await asyncio.to_thread(self.journal.acquire)
        self._tasks = [
            asyncio.create_task(self._drain_loop(), name="opsgate-trace-drain"),
            asyncio.create_task(self._overflow_loop(), name="opsgate-trace-overflow"),
            asyncio.create_task(self._replay_loop(), name="opsgate-trace-replay"),
        ]
        self._replay_wanted.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Drain everything: to the store while it answers, the rest to the journal."""
        if self._stopped:
            return
        self._closing = True
        if not self._tasks:
            await asyncio.to_thread(self.journal.acquire)
            await self._spill(self._take_queued())
        else:
            drain, overflow, replay = self._tasks
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)  # wake the drain if it waits on an empty queue
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(drain)
            except TimeoutError:
                log.warning("trace writer did not drain in %.1fs; journaling the rest", timeout)
                await _cancel(drain)
                await self._spill([*self._inflight, *self._take_queued()])
                self._inflight = []
            self._overflow_ready.set()
            await overflow
            await _cancel(replay)
        # From here `submit` journals directly; collect what slipped in while the tasks wound down.
        self._stopped = True
        rest = [*self._take_queued(), *map(self._sealed, self._overflow)]
        self._overflow = []
        await self._spill(rest)
        self._overflow_idle.set()
        self.journal.release()

    async def flush(self) -> None:
        """Wait until every record submitted so far is in the store or the journal."""
        if self._stopped:
            return
        if not self._tasks:
            raise RuntimeError("TraceWriter.flush() before start(): nothing would drain")
        await self._queue.join()
        await self._overflow_idle.wait()

    def stats(self) -> WriterStats:
        n = self._n
        return WriterStats(
            queue_depth=self._queue.qsize(),
            queue_capacity=self._capacity,
            overflow_depth=len(self._overflow),
            submitted=n.submitted,
            written=n.written,
            batches_written=n.batches,
            batch_latency_last_s=n.latency_last,
            batch_latency_avg_s=n.latency_total / n.batches if n.batches else 0.0,
            failures=n.failures,
            overflowed=n.overflowed,
            spilled=n.spilled,
            replayed=n.replayed,
            rejected=n.rejected,
            dropped=n.dropped,
            corrupt_journal_lines=self.journal.corrupt,
            store_healthy=self._healthy,
            journal_pending=self._journal_pending,
        )

    # -- draining ---------------------------------------------------------------------------

    def _sealed(self, record: TraceRecord) -> TraceRecord:
        """The record as it may leave memory: bodies encrypted (every path to the store or the
        journal passes here exactly once); if sealing fails, the bodies are dropped, not kept."""
        if self._seal is None:
            return record
        try:
            return self._seal(record)
        except Exception:
            log.exception("could not encrypt the bodies of trace %s; dropped", record.trace_id)
            return replace(record, request_body=None, response_body=None)

    def _take_queued(self) -> list[TraceRecord]:
        taken: list[TraceRecord] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return taken
            self._queue.task_done()
            if item is not None:
                taken.append(self._sealed(item))

    async def _drain_loop(self) -> None:
        while not (self._closing and self._queue.empty()):
            first = await self._queue.get()
            taken = 1
            batch = [] if first is None else [first]
            deadline = asyncio.get_running_loop().time() + self._flush_interval
            try:
                while len(batch) < self._batch_size:
                    try:
                        item = self._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        if self._closing:
                            break
                        try:
                            async with asyncio.timeout_at(deadline):
                                item = await self._queue.get()
                        except TimeoutError:
                            break
                    taken += 1
                    if item is not None:
                        batch.append(item)
                self._inflight = batch = [self._sealed(r) for r in batch]
                try:
                    await self._deliver(batch)
                except Exception:
                    log.exception("trace writer failed to deliver a batch; journaling it")
                    await self._spill(batch)
                self._inflight = []
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    async def _deliver(self, batch: list[TraceRecord]) -> None:
        if not batch:
            return
        if not self._healthy:
            await self._spill(batch)
            return
        left = await self._write_or_split(batch)
        if left:
            self._healthy = False
            await self._spill(left)

    async def _write_or_split(self, batch: list[TraceRecord]) -> list[TraceRecord]:
        """Write `batch`; return what could not be written because the store is unavailable.

        A refused batch is halved until the refused records are alone; those go to the
        dead-letter file so that one bad record never holds the others back.
        """
        try:
            await self._timed_write(batch)
            return []
        except StoreUnavailableError as exc:
            self._n.failures += 1
            log.warning("trace store unavailable (%d traces to the journal): %s", len(batch), exc)
            return batch
        except RecordRejectedError as exc:
            if len(batch) == 1:
                log.error("trace %s refused by the store, kept aside: %s", batch[0].trace_id, exc)
                await self._spill(batch, rejected=True)
                return []
        middle = len(batch) // 2
        left = await self._write_or_split(batch[:middle])
        if left:
            return left + batch[middle:]
        return await self._write_or_split(batch[middle:])

    async def _timed_write(self, batch: list[TraceRecord]) -> None:
        began = time.perf_counter()
        try:
            async with asyncio.timeout(self._write_timeout):
                await self.store.write_batch(batch)
        except TimeoutError as exc:
            raise StoreUnavailableError(f"write timed out after {self._write_timeout}s") from exc
        except (StoreUnavailableError, RecordRejectedError):
            raise
        except Exception as exc:  # a store outside this package broke its contract
            log.exception("trace store raised an unexpected error; treating it as unavailable")
            raise StoreUnavailableError(repr(exc)) from exc
        elapsed = time.perf_counter() - began
        self._n.written += len(batch)
        self._n.batches += 1
        self._n.latency_last = elapsed
        self._n.latency_total += elapsed

    async def _spill(self, records: list[TraceRecord], *, rejected: bool = False) -> None:
        if not records:
            return
        try:
            await self.journal.append(records, rejected=rejected)
        except Exception:
            self._n.dropped += len(records)
            log.critical("could not journal %d traces; they are lost", len(records), exc_info=True)
            return
        if rejected:
            self._n.rejected += len(records)
        else:
            self._n.spilled += len(records)
            self._journal_pending = True
            self._replay_wanted.set()

    # -- overflow and replay ----------------------------------------------------------------

    async def _overflow_loop(self) -> None:
        while True:
            await self._overflow_ready.wait()
            self._overflow_ready.clear()
            while self._overflow:
                records, self._overflow = self._overflow, []
                await self._spill([self._sealed(r) for r in records])
            self._overflow_idle.set()
            if self._closing:
                return

    async def _replay_loop(self) -> None:
        delay = self._retry_min
        while True:
            await self._replay_wanted.wait()
            self._replay_wanted.clear()
            while not await self._try_replay():
                self._healthy = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
            delay = self._retry_min
            self._healthy = True
            self._journal_pending = self._replay_wanted.is_set()

    async def _try_replay(self) -> bool:
        try:
            return await self._replay_once()
        except Exception:
            log.exception("journal replay failed; retrying later")
            return False

    async def _replay_once(self) -> bool:
        """Re-send the journal; True once it is empty, False when the store failed again."""
        while (file := await self.journal.next_for_replay()) is not None:
            async with contextlib.aclosing(
                self.journal.read_batches(file, self._batch_size)
            ) as batches:
                async for records in batches:
                    if await self._write_or_split(records):
                        return False
                    self._n.replayed += len(records)
            await self.journal.discard(file)
        return True


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
