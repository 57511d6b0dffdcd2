"""Timing a read query: one warm-up run, then `repeats` timed runs; report the median."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.stats import median


@dataclass(frozen=True, slots=True)
class Timing:
    query: str
    backend: str
    runs_ms: tuple[float, ...]
    rows: int
    """Rows (or list items) the query returned."""

    @property
    def median_ms(self) -> float:
        return median(self.runs_ms)


MIN_RUNS = 3
BUDGET_S = 6.0
"""A slow query stops repeating after this long (once it has `MIN_RUNS` timed runs)."""


async def timed(
    query: str, backend: str, repeats: int, run: Callable[[], Awaitable[int]]
) -> Timing:
    """Time `run` (which returns how many rows it got); the first call warms caches."""
    runs: list[float] = []
    found = 0
    started = time.perf_counter()
    for k in range(repeats + 1):
        began = time.perf_counter()
        found = await run()
        if k:
            runs.append((time.perf_counter() - began) * 1000)
        if len(runs) >= MIN_RUNS and time.perf_counter() - started > BUDGET_S:
            break
    return Timing(query, backend, tuple(runs), found)
