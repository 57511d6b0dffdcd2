"""The in-process budget ledger: the embedded default, and the reference Redis matches.

Counters live in a dict keyed by (scope, period key); a restart loses them, and the seeder
puts back what the database recorded. Ended periods are dropped once a day.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from opsgate.access.budgets.ledger import Clock, Fired, LedgerBase
from opsgate.access.budgets.model import (
    AlertSink,
    BudgetScope,
    BudgetStatus,
    Held,
    Period,
    Refusal,
    Reservation,
    ScopeSeen,
    budget_period,
    due,
)
from opsgate.access.limits.model import ScopeRef


@dataclass(slots=True)
class _Counter:
    end: float | None
    created: float
    seeded: bool = False
    base: int = 0
    spent: int = 0
    held: int = 0
    holds: dict[str, int] = field(default_factory=dict)
    fired: set[str] = field(default_factory=set)

    @property
    def used(self) -> int:
        return self.base + self.spent + self.held


class MemoryBudgetLedger(LedgerBase):
    """`BudgetLedger` for one process."""

    def __init__(self, *, clock: Clock = time.time, on_alert: AlertSink | None = None) -> None:
        super().__init__(clock=clock, on_alert=on_alert)
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._swept = 0

    def _counter(self, ref: ScopeRef, period: Period, now: float) -> _Counter:
        key = (ref.slug, period.key)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _Counter(period.end, now)
        return counter

    def _counters_of(self, res: Reservation, now: float) -> list[_Counter]:
        pairs = zip(res.scopes, res.periods, strict=True)
        return [self._counter(scope.ref, period, now) for scope, period in pairs]

    async def _reserve(
        self, res: Reservation, micros: int, minimum: int | None, now: float
    ) -> Held | Refusal:
        self._sweep(now)
        counters = self._counters_of(res, now)
        rooms = [s.max_micros - c.used for s, c in zip(res.scopes, counters, strict=True)]
        room = min(rooms)
        tightest = rooms.index(room)
        amount = micros
        if room <= 0 or room < micros:
            if minimum is None or room <= 0 or room < minimum:
                counter = counters[tightest]
                fresh = "x" not in counter.fired
                counter.fired.add("x")
                return Refusal(tightest, counter.used, fresh)
            amount = room
        held = Held(amount)
        for counter in counters:
            held.seen.append(ScopeSeen(counter.used, None if counter.seeded else counter.created))
            if amount > 0:
                counter.held += amount
                counter.holds[res.id] = amount
        return held

    async def _extend(self, res: Reservation, micros: int) -> bool:
        now = self._clock()
        counters = self._counters_of(res, now)
        for scope, counter in zip(res.scopes, counters, strict=True):
            if res.id not in counter.holds or counter.used + micros > scope.max_micros:
                return False
        for counter in counters:
            counter.held += micros
            counter.holds[res.id] += micros
        return True

    async def _settle(self, res: Reservation, micros: int) -> Fired:
        now = self._clock()
        fired: Fired = []
        for index, (scope, period) in enumerate(zip(res.scopes, res.periods, strict=True)):
            counter = self._counter(scope.ref, period, now)
            counter.held -= counter.holds.pop(res.id, 0)
            counter.spent += micros
            total = counter.base + counter.spent
            for threshold in due(scope.policy.alert_at, total, scope.max_micros):
                if repr(threshold) not in counter.fired:
                    counter.fired.add(repr(threshold))
                    fired.append((index, threshold, total))
        return fired

    async def seed(
        self, ref: ScopeRef, period: Period, micros: int, *, only_if_missing: bool
    ) -> bool:
        counter = self._counters.get((ref.slug, period.key))
        if counter is None:
            counter = self._counter(ref, period, self._clock())
        elif only_if_missing or counter.seeded:
            return False
        counter.base, counter.seeded = micros, True
        return True

    async def status(self, scope: BudgetScope) -> BudgetStatus:
        now = self._clock()
        period = budget_period(scope.policy, now)
        counter = self._counters.get((scope.ref.slug, period.key))
        if counter is None:
            return BudgetStatus(scope, period, 0, 0)
        return BudgetStatus(scope, period, counter.base + counter.spent, counter.held)

    def _sweep(self, now: float) -> None:
        """Once a day, forget counters of periods that ended with nothing held."""
        day = math.floor(now / 86_400)
        if day == self._swept:
            return
        self._swept = day
        counters = self._counters
        ended = [
            k
            for k, c in counters.items()
            if c.end is not None and c.end < now - 86_400 and not c.holds
        ]
        for key in ended:
            del counters[key]
