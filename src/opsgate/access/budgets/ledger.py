"""What both budget backends share: period choice, errors, alerts, and noting unseeded counters.

A backend implements five primitives (`_reserve`, `_extend`, `_settle`, `seed`, `status`)
that each touch every scope of a request atomically; this class turns their answers into
reservations, 429s and alerts, so the memory and Redis ledgers behave the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from opsgate.access.budgets.model import (
    AlertSink,
    BudgetExceededError,
    BudgetScope,
    BudgetStatus,
    Held,
    Period,
    Refusal,
    Reservation,
    ScopeSeen,
    budget_period,
    exceeded_alert,
    threshold_alert,
)
from opsgate.access.limits.model import ScopeRef
from opsgate.alerts.events import Alert

log = logging.getLogger("opsgate.access")

Clock = Callable[[], float]
Fired = list[tuple[int, float, int]]
"""(scope index, threshold, settled spend) for thresholds reached for the first time."""


class LedgerBase(ABC):
    def __init__(self, *, clock: Clock = time.time, on_alert: AlertSink | None = None) -> None:
        self._clock = clock
        self.on_alert = on_alert
        self.track_unseeded = False
        """Set by a `BudgetSeeder`: note counters that still need their database spend."""
        self.unseeded: dict[tuple[str, str], tuple[ScopeRef, Period, float]] = {}
        self.unseeded_added = asyncio.Event()

    def now(self) -> float:
        return self._clock()

    # -- the interface -------------------------------------------------------------------------

    async def reserve(
        self,
        scopes: Sequence[BudgetScope],
        micros: int,
        *,
        minimum: int | None = None,
        at: float | None = None,
    ) -> Reservation:
        res, now = self._begin(scopes, at)
        if not scopes:
            return res
        micros = max(0, micros)
        return self._conclude(res, await self._reserve(res, micros, minimum, now), micros, now)

    async def extend(self, reservation: Reservation, micros: int) -> bool:
        if reservation.settled or not reservation.scopes:
            return False
        if micros <= 0:
            return True
        if not await self._extend(reservation, micros):
            return False
        reservation.amount += micros
        return True

    async def settle(self, reservation: Reservation, micros: int) -> None:
        if self._settling(reservation):
            self._fire(reservation, await self._settle(reservation, max(0, micros)))

    # -- the steps around a backend call (a Redis pipeline runs the call in between) ------------

    def _begin(
        self, scopes: Sequence[BudgetScope], at: float | None = None
    ) -> tuple[Reservation, float]:
        """`at`: when the request started (its trace's `started_at`), which decides its period
        and, for a counter it creates, the moment before which the database's spend is seeded:
        so the request itself is never both counted live and seeded."""
        now = self._clock() if at is None else at
        periods = tuple(budget_period(s.policy, now) for s in scopes)
        return Reservation(uuid.uuid4().hex, tuple(scopes), periods, 0), now

    def _conclude(
        self, res: Reservation, answer: Held | Refusal, micros: int, now: float
    ) -> Reservation:
        if isinstance(answer, Refusal):
            scope, period = res.scopes[answer.index], res.periods[answer.index]
            if answer.alert:
                self._emit(exceeded_alert(scope, period, answer.used))
            raise BudgetExceededError(scope, period, answer.used, micros, now)
        res.amount = answer.amount
        self._note(res, answer.seen)
        return res

    @staticmethod
    def _settling(res: Reservation) -> bool:
        """Mark settled; False when there is nothing (more) to do."""
        if res.settled:
            return False
        res.settled = True
        return bool(res.scopes)

    def _fire(self, res: Reservation, fired: Fired) -> None:
        for index, threshold, spent in fired:
            scope, period = res.scopes[index], res.periods[index]
            self._emit(threshold_alert(scope, period, threshold, spent))

    # -- for backends --------------------------------------------------------------------------

    def _note(self, res: Reservation, seen: Sequence[ScopeSeen]) -> None:
        if not self.track_unseeded:
            return
        for scope, period, saw in zip(res.scopes, res.periods, seen, strict=True):
            if saw.created is not None:
                key = (scope.ref.slug, period.key)
                if key not in self.unseeded:
                    self.unseeded[key] = (scope.ref, period, saw.created)
                    self.unseeded_added.set()

    def _emit(self, alert: Alert) -> None:
        if self.on_alert is None:
            return
        try:
            self.on_alert(alert)
        except Exception:  # an alert must never fail a request
            log.exception("alert sink failed for %s", alert.kind)

    @abstractmethod
    async def _reserve(
        self, res: Reservation, micros: int, minimum: int | None, now: float
    ) -> Held | Refusal:
        """Hold `micros` (or, given `minimum`, the smallest room if it is >= minimum) in
        every scope of `res`, or refuse naming the tightest scope; all or nothing."""

    @abstractmethod
    async def _extend(self, res: Reservation, micros: int) -> bool: ...

    @abstractmethod
    async def _settle(self, res: Reservation, micros: int) -> Fired: ...

    @abstractmethod
    async def seed(
        self, ref: ScopeRef, period: Period, micros: int, *, only_if_missing: bool
    ) -> bool:
        """Set the spend the database knows from before the counter existed; once per
        counter. `only_if_missing`: create it seeded, but leave an existing one alone."""

    @abstractmethod
    async def status(self, scope: BudgetScope) -> BudgetStatus: ...

    async def aclose(self) -> None:
        return None
