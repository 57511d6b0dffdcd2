"""Event-loop lag: how late a timer fires. Every request on a worker waits at least that long
before the gateway even looks at it, so lag rising is saturation showing before latency
explodes (`opsgate_event_loop_lag_seconds`; the Grafana panel and the alert in `deploy/`).

A timer that asks for `interval` seconds and wakes after `interval + lag` measures the time the
loop spent on other work when it should have run the timer. Sampling costs one timer wake-up
per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

DEFAULT_INTERVAL = 0.25


class LoopLagMonitor:
    """Samples the running loop's lag every `interval` seconds and hands it to `observe`."""

    def __init__(self, observe: Callable[[float], None], interval: float = DEFAULT_INTERVAL):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.observe = observe
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.interval)
            self.observe(max(0.0, loop.time() - asked - self.interval))

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
