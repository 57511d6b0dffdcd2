"""Admission for one request: its rate-limit permit and its budget hold, taken and given back
as one step.

`SequentialGate` works with any limiter and ledger (two calls in, two out). `RedisGate` is
chosen when both live on the same Redis client: the limiter's and the ledger's scripts share
one pipelined round trip on the way in and one on the way out, which is most of what keeps the
Redis backend under a millisecond per request. When one part refuses and the other admitted,
the other is undone (an extra round trip, on the refusal path only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opsgate.access.budgets.model import BudgetLedger, BudgetScope, Reservation
from opsgate.access.budgets.redis import RedisBudgetLedger
from opsgate.access.limits.model import LimitScope, Permit, RateLimiter
from opsgate.access.limits.redis import RedisRateLimiter, ScriptCall, run_scripts


@dataclass(slots=True)
class Admission:
    permit: Permit | None = None
    reservation: Reservation | None = None


class Gate(Protocol):
    async def admit(
        self,
        limits: Sequence[LimitScope],
        tokens: int,
        budgets: Sequence[BudgetScope],
        micros: int,
        minimum: int | None = None,
        at: float | None = None,
    ) -> Admission:
        """Charge `limits` and hold `micros` in `budgets`, or raise the 429 of the first part
        that refused, with nothing left charged or held. `at`: when the request started."""
        ...

    async def finish(self, admission: Admission, tokens: int, micros: int) -> None:
        """Correct the tokens, free the slot, settle the real cost. Idempotent."""
        ...


class SequentialGate:
    def __init__(self, limiter: RateLimiter | None, ledger: BudgetLedger | None) -> None:
        self.limiter = limiter
        self.ledger = ledger

    async def admit(
        self,
        limits: Sequence[LimitScope],
        tokens: int,
        budgets: Sequence[BudgetScope],
        micros: int,
        minimum: int | None = None,
        at: float | None = None,
    ) -> Admission:
        admission = Admission()
        if limits and self.limiter is not None:
            admission.permit = await self.limiter.acquire(limits, tokens)
        if budgets and self.ledger is not None:
            try:
                admission.reservation = await self.ledger.reserve(
                    budgets, micros, minimum=minimum, at=at
                )
            except BaseException:
                if admission.permit is not None and self.limiter is not None:
                    await self.limiter.refund(admission.permit)
                raise
        return admission

    async def finish(self, admission: Admission, tokens: int, micros: int) -> None:
        try:
            if admission.permit is not None and self.limiter is not None:
                await self.limiter.release(admission.permit, tokens)
        finally:
            if admission.reservation is not None and self.ledger is not None:
                await self.ledger.settle(admission.reservation, micros)


class RedisGate(SequentialGate):
    """Both parts on one Redis client: one round trip in, one out."""

    limiter: RedisRateLimiter
    ledger: RedisBudgetLedger

    def __init__(self, limiter: RedisRateLimiter, ledger: RedisBudgetLedger) -> None:
        super().__init__(limiter, ledger)

    async def admit(
        self,
        limits: Sequence[LimitScope],
        tokens: int,
        budgets: Sequence[BudgetScope],
        micros: int,
        minimum: int | None = None,
        at: float | None = None,
    ) -> Admission:
        if not limits or not budgets:
            return await super().admit(limits, tokens, budgets, micros, minimum, at)
        calls: list[ScriptCall[Any]] = [
            self.limiter.acquire_call(limits, tokens),
            self.ledger.reserve_call(budgets, micros, minimum=minimum, at=at),
        ]
        permit, reservation = await run_scripts(self.limiter.client, calls, return_exceptions=True)
        if isinstance(permit, Permit) and isinstance(reservation, Reservation):
            return Admission(permit, reservation)
        if isinstance(reservation, Reservation):
            await self.ledger.settle(reservation, 0)
        if isinstance(permit, Permit):
            await self.limiter.refund(permit)
        raise permit if isinstance(permit, BaseException) else reservation

    async def finish(self, admission: Admission, tokens: int, micros: int) -> None:
        calls: list[ScriptCall[Any]] = []
        if admission.permit is not None:
            release = self.limiter.release_call(admission.permit, tokens)
            calls += [release] if release is not None else []
        if admission.reservation is not None:
            settle = self.ledger.settle_call(admission.reservation, micros)
            calls += [settle] if settle is not None else []
        if calls:
            await run_scripts(self.limiter.client, calls)


def gate_for(limiter: RateLimiter | None, ledger: BudgetLedger | None) -> SequentialGate:
    """The cheapest gate for this pair of backends."""
    if (
        isinstance(limiter, RedisRateLimiter)
        and isinstance(ledger, RedisBudgetLedger)
        and limiter.client is ledger.client
    ):
        return RedisGate(limiter, ledger)
    return SequentialGate(limiter, ledger)
