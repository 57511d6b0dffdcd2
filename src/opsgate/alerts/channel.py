"""The alert channel: `emit()` from anywhere, never blocking; a background worker stores each
alert as an event and delivers it to every sink, retrying with exponential backoff.

The queue is bounded: when it is full (a sink down for long, an alert storm) new alerts are
dropped and counted in `stats.dropped`, rather than holding requests or memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from opsgate.alerts.events import Alert, DeliveryStatus
from opsgate.alerts.store import AlertEventStore

log = logging.getLogger("opsgate.alerts")


class DeliveryError(Exception):
    """A sink could not deliver; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Sink(Protocol):
    """Somewhere alerts go (a webhook, later e-mail or PagerDuty)."""

    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver once, or raise `DeliveryError`."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    """Tries per sink, the first included."""
    base_s: float = 0.5
    max_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff before try `attempt + 1`, jittered so retries do not align."""
        return rng.uniform(0.5, 1.0) * min(self.max_s, self.base_s * 2.0 ** (attempt - 1))


@dataclass(slots=True)
class ChannelStats:
    emitted: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0


class AlertService:
    def __init__(
        self,
        sinks: Sequence[Sink] = (),
        store: AlertEventStore | None = None,
        *,
        queue_size: int = 1000,
        retry: RetryPolicy | None = None,
        concurrency: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sinks = tuple(sinks)
        self.store = store
        self.retry = retry or RetryPolicy()
        self.stats = ChannelStats()
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(queue_size)
        self._slots = asyncio.Semaphore(concurrency)
        self._sleep = sleep
        self._rng = random.Random()
        self._worker: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    def emit(self, alert: Alert) -> bool:
        """Queue `alert`; False (and counted) when the queue is full. Never blocks."""
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.warning("alert queue full, dropped %s: %s", alert.kind, alert.message)
            return False
        self.stats.emitted += 1
        return True

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._store(alert)
                await self._slots.acquire()
                task = asyncio.get_running_loop().create_task(self._deliver(alert))
                self._deliveries.add(task)
                task.add_done_callback(self._delivered)
            finally:
                self._queue.task_done()

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        self._slots.release()

    async def _store(self, alert: Alert) -> None:
        if self.store is None:
            return
        try:
            await self.store.add(alert)
        except Exception as exc:
            log.warning("could not store alert %s: %s", alert.id, exc)

    async def _deliver(self, alert: Alert) -> None:
        status: DeliveryStatus = "delivered" if self.sinks else "no_sink"
        attempts, error = 0, None
        for sink in self.sinks:
            tries, sink_error = await self._deliver_to(sink, alert)
            attempts += tries
            if sink_error is not None:
                status, error = "failed", f"{sink.name}: {sink_error}"
        if status == "failed":
            self.stats.failed += 1
        elif self.sinks:
            self.stats.delivered += 1
        if self.store is not None:
            try:
                await self.store.mark(alert.id, status, attempts, error)
            except Exception as exc:
                log.warning("could not record delivery of alert %s: %s", alert.id, exc)

    async def _deliver_to(self, sink: Sink, alert: Alert) -> tuple[int, str | None]:
        """Try until delivered, a non-retryable error, or attempts run out."""
        error = "not tried"
        for attempt in range(1, self.retry.attempts + 1):
            try:
                await sink.send(alert)
                return attempt, None
            except DeliveryError as exc:
                error = str(exc)
                if not exc.retryable:
                    return attempt, error
            if attempt < self.retry.attempts:
                await self._sleep(self.retry.delay(attempt, self._rng))
        log.warning("alert %s not delivered to %s: %s", alert.id, sink.name, error)
        return self.retry.attempts, error

    async def drain(self) -> None:
        """Wait until every queued alert is stored and its deliveries have ended."""
        await self._queue.join()
        while self._deliveries:
            await asyncio.gather(*list(self._deliveries), return_exceptions=True)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout` seconds), then stop."""
        if self._worker is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.drain()
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
