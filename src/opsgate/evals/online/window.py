"""Recent online scores of one (rule, metric), for the Prometheus gauges."""

from __future__ import annotations

import math
from collections import deque


class ScoreWindow:
    """Scores of the last `seconds` (at most `capacity`): their mean and flagged share."""

    def __init__(self, seconds: float, capacity: int = 10_000) -> None:
        self.seconds = seconds
        self._items: deque[tuple[float, float, bool]] = deque(maxlen=capacity)

    def add(self, at: float, value: float, flagged: bool) -> None:
        self._items.append((at, value, flagged))

    def trim(self, now: float) -> None:
        cutoff = now - self.seconds
        while self._items and self._items[0][0] < cutoff:
            self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def mean(self) -> float:
        """NaN when empty (an alert on `> x` stays quiet without data)."""
        if not self._items:
            return math.nan
        return sum(v for _, v, _ in self._items) / len(self._items)

    @property
    def flagged(self) -> float:
        if not self._items:
            return math.nan
        return sum(1 for _, _, f in self._items if f) / len(self._items)
