"""The background score writer: `POST /v1/feedback` answers once its scores are queued.

Like the trace writer (store/writer.py), the request path only puts scores on a bounded
in-memory queue; one task drains it in batches (`batch_size`, or whatever arrived within
`flush_interval`; larger while it is behind). Unlike a trace, a score can be refused when there
is no room: `offer` takes a request's scores all or none, and a full queue (the database is
down, or slower than the traffic) makes the API answer 503 with Retry-After instead of
accepting what it might lose.

While the store is unavailable the batch in hand is retried with backoff. Scores the database
refuses are halved until the refused one is alone, then kept in the dead-letter file
`<spill>.rejected`. At shutdown whatever the store cannot take goes to the spill file, which
the next start writes to the store before deleting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from opsgate.feedback.scores import Score, ScoreStore
from opsgate.store.errors import RecordRejectedError, StoreUnavailableError

log = logging.getLogger("opsgate.feedback.writer")
BACKLOG_GROWTH = 8


@dataclass(slots=True)
class ScoreWriterStats:
    queued: int = 0
    written: int = 0
    batches: int = 0
    failures: int = 0
    rejected: int = 0
    spilled: int = 0
    replayed: int = 0


class ScoreWriter:
    """Moves accepted scores from the request path into a `ScoreStore`."""

    def __init__(
        self,
        store: ScoreStore,
        *,
        capacity: int = 20_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        write_timeout: float = 30.0,
        retry_min: float = 0.5,
        retry_max: float = 30.0,
        on_batch: Callable[[ScoreWriterStats], None] | None = None,
    ) -> None:
        self.store = store
        self.capacity = capacity
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._write_timeout = write_timeout
        self._retry = (retry_min, retry_max)
        self._on_batch = on_batch
        self._queue: deque[Score] = deque()
        self._inflight: list[Score] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._replay: asyncio.Task[None] | None = None
        self._closing = False
        self.spill: Path | None = None
        self.stats = ScoreWriterStats()

    # -- the request path -------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._queue) + len(self._inflight)

    def room(self) -> int:
        return max(0, self.capacity - self.depth)

    def offer(self, scores: Sequence[Score]) -> bool:
        """Queue all of `scores`, or none (False) when there is not room for all of them."""
        if self._closing or len(scores) > self.room():
            return False
        self._queue.extend(scores)
        self.stats.queued += len(scores)
        self._idle.clear()
        self._ready.set()
        return True

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, spill: str | Path | None = None) -> None:
        """Start draining; with `spill`, write what a previous run left there first."""
        if self._task is not None:
            return
        self.spill = Path(spill) if spill is not None else None
        self._task = asyncio.create_task(self._drain_loop(), name="opsgate-score-drain")
        if self.spill is not None:
            self._replay = asyncio.create_task(self._replay_spill(), name="opsgate-score-replay")

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every score offered so far has been written (or set aside);
        `StoreUnavailableError` when that takes longer than `timeout` (the store is down)."""
        if self._task is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            raise StoreUnavailableError(
                f"{self.depth} scores still wait for the database after {timeout}s"
            ) from None

    async def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued while the store answers; spill the rest."""
        self._closing = True
        if self._replay is not None:
            await _cancel(self._replay)
        if self._task is not None:
            self._ready.set()
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._task)
            except TimeoutError:
                log.warning("score writer did not drain in %.1fs; spilling the rest", timeout)
                await _cancel(self._task)
        rest = [*self._inflight, *self._queue]
        self._inflight, self._queue = [], deque()
        if rest:
            await self._spill(rest)
        self._idle.set()

    # -- draining ---------------------------------------------------------------------------

    async def _drain_loop(self) -> None:
        delay = self._retry[0]
        while True:
            if not self._queue and not self._inflight:
                self._idle.set()
                if self._closing:
                    return
                self._ready.clear()
                await self._ready.wait()
                if not self._queue:
                    continue
                if len(self._queue) < self._batch_size and not self._closing:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._flush_interval):
                            await self._filled()
            if not self._inflight:
                self._inflight = [self._queue.popleft() for _ in range(self._take())]
            try:
                await self._write_or_split(self._inflight)
            except StoreUnavailableError as exc:
                self.stats.failures += 1
                log.warning("score store unavailable (%d scores wait): %s", self.depth, exc)
                if self._on_batch is not None:
                    self._on_batch(self.stats)
                if self._closing:
                    return  # stop() spills what is left
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry[1])
                continue
            delay = self._retry[0]
            self._inflight = []
            if self._on_batch is not None:
                self._on_batch(self.stats)

    def _take(self) -> int:
        """`batch_size`, or under a backlog up to `BACKLOG_GROWTH` times that: the fixed cost
        of a batch (transaction, round trips, the hop to the writer's thread) is paid by more
        scores when the writer is behind."""
        backlog = len(self._queue)
        return min(
            backlog, max(self._batch_size, min(backlog // 2, self._batch_size * BACKLOG_GROWTH))
        )

    async def _filled(self) -> None:
        while len(self._queue) < self._batch_size and not self._closing:
            self._ready.clear()
            await self._ready.wait()

    async def _write_or_split(self, batch: list[Score]) -> None:
        """Write `batch`; refused scores go to the dead-letter file one by one."""
        try:
            async with asyncio.timeout(self._write_timeout):
                await self.store.write_batch(batch)
        except TimeoutError as exc:
            raise StoreUnavailableError(f"write timed out after {self._write_timeout}s") from exc
        except RecordRejectedError as exc:
            if len(batch) == 1:
                log.error("score %s refused by the store, kept aside: %s", batch[0].score_id, exc)
                await self._spill(batch, rejected=True)
                return
            middle = len(batch) // 2
            await self._write_or_split(batch[:middle])
            await self._write_or_split(batch[middle:])
            return
        self.stats.written += len(batch)
        self.stats.batches += 1

    # -- the spill file ---------------------------------------------------------------------

    async def _spill(self, scores: list[Score], *, rejected: bool = False) -> None:
        if self.spill is None:
            log.critical("%d scores lost: the store is down and no spill file is set", len(scores))
            return
        path = self.spill.with_name(self.spill.name + ".rejected") if rejected else self.spill
        lines = b"".join(orjson.dumps(dataclasses.asdict(s)) + b"\n" for s in scores)
        try:
            await asyncio.to_thread(_append, path, lines)
        except OSError:
            log.critical("could not write %d scores to %s; they are lost", len(scores), path)
            return
        if rejected:
            self.stats.rejected += len(scores)
        else:
            self.stats.spilled += len(scores)

    async def _replay_spill(self) -> None:
        """Write the spill file's scores to the store, then delete it; retried with backoff."""
        assert self.spill is not None
        replaying = self.spill.with_name(self.spill.name + ".replaying")
        delay = self._retry[0]
        while True:
            try:
                await asyncio.to_thread(_rotate, self.spill, replaying)
                for batch in await asyncio.to_thread(_read, replaying, self._batch_size):
                    await self._write_or_split(batch)
                    self.stats.replayed += len(batch)
                await asyncio.to_thread(replaying.unlink, missing_ok=True)
                return
            except (StoreUnavailableError, OSError) as exc:
                log.warning("score spill replay failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry[1])


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _rotate(live: Path, replaying: Path) -> None:
    """Move the live spill file aside for replay (unless a replay file is left over)."""
    if not replaying.exists() and live.exists():
        os.replace(live, replaying)


def _read(path: Path, size: int) -> list[list[Score]]:
    if not path.exists():
        return []
    scores = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            scores.append(Score(**orjson.loads(line)))
        except (ValueError, TypeError):
            log.error("skipping an unreadable line in %s", path)
    return [scores[i : i + size] for i in range(0, len(scores), size)]


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
