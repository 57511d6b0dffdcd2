"""The per-hour cost cap of online judge calls."""

from __future__ import annotations

import time
from collections.abc import Callable

HOUR = 3600


class HourlyCap:
    """Judge spend per clock hour (UTC), in micro-dollars. `allows()` says whether another judge
    call may start; calls already running finish and are added, so the hour can end a few
    calls over the cap (at most the workers' concurrency times one judgement)."""

    def __init__(self, usd_per_hour: float, clock: Callable[[], float] = time.time) -> None:
        self.limit_micros = round(usd_per_hour * 1_000_000)
        self._clock = clock
        self._hour = -1
        self._spent = 0

    def _roll(self) -> None:
        hour = int(self._clock() // HOUR)
        if hour != self._hour:
            self._hour, self._spent = hour, 0

    @property
    def spent_micros(self) -> int:
        """Spent in the current hour."""
        self._roll()
        return self._spent

    def allows(self) -> bool:
        self._roll()
        return self._spent < self.limit_micros

    def add(self, micros: int) -> None:
        self._roll()
        self._spent += max(micros, 0)
