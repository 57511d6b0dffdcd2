"""Work that finishes a trace after its answer has gone: off the request path and the loop.

Masking stored bodies (`traces.store_bodies: masked`, a `mask_in_logs` policy) costs about
2 ms per 1k tokens with the built-in detectors and tens of milliseconds with Presidio. Done in
the Record stage it delayed every answer by that much and stalled the event loop; here the
masking runs in a worker thread once the response is on its way, and the trace is published
back on the loop (the writer's queue is not thread-safe).

Nothing is dropped: past `limit` jobs in flight a job runs inline, which slows the caller down
instead of letting memory grow, and `drain()` (at shutdown, before the trace writer stops)
waits for every job still running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("opsgate.publish")


class Deferred:
    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def submit(self, prepare: Callable[[], T], finish: Callable[[T], None]) -> None:
        """Run `prepare` in a worker thread, then `finish(result)` on the loop. Both must
        handle their own errors (a failure here is logged, and the trace is lost)."""
        if len(self._tasks) >= self.limit:
            self._guarded(prepare, finish)
            return
        task = asyncio.get_running_loop().create_task(self._run(prepare, finish))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, prepare: Callable[[], T], finish: Callable[[T], None]) -> None:
        try:
            result = await asyncio.to_thread(prepare)
            finish(result)
        except Exception:
            log.exception("could not finish a trace in the background")

    def _guarded(self, prepare: Callable[[], T], finish: Callable[[T], None]) -> None:
        try:
            finish(prepare())
        except Exception:
            log.exception("could not finish a trace")

    async def drain(self) -> None:
        """Wait for every job, including jobs submitted while waiting."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
