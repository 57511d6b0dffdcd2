"""Budgets: one suite, run against the in-memory and the Redis ledger alike."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from opsgate.access.budgets.ledger import LedgerBase
from opsgate.access.budgets.memory import MemoryBudgetLedger
from opsgate.access.budgets.model import (
    BudgetExceededError,
    BudgetScope,
    Reservation,
    period_of,
)
from opsgate.access.budgets.redis import RedisBudgetLedger
from opsgate.access.limits.model import ScopeRef
from opsgate.access.principal import BudgetPolicy
from opsgate.alerts.events import Alert
from tests.access.test_limits import T0, Clock
from tests.fixtures.redisdb import redis_prefix

DAY = 86_400


@dataclass
class Backend:
    name: str
    clock: Clock
    make: Callable[[], LedgerBase]
    alerts: list[Alert] = field(default_factory=list)
    made: list[LedgerBase] = field(default_factory=list)

    def ledger(self) -> LedgerBase:
        ledger = self.make()
        ledger.on_alert = self.alerts.append
        self.made.append(ledger)
        return ledger


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    clock = Clock()
    if request.param == "memory":
        shared = MemoryBudgetLedger(clock=clock)
        yield Backend("memory", clock, lambda: shared)
        return
    async with redis_prefix() as (client, prefix):
        made = Backend(
            "redis", clock, lambda: RedisBudgetLedger(client, prefix=prefix, clock=clock)
        )
        yield made
        for ledger in made.made:
            await ledger.aclose()


def budget(usd: str, period: str = "daily", kind: str = "key", id: str = "k1") -> BudgetScope:
    policy = BudgetPolicy(max_usd=Decimal(usd), period=period)  # type: ignore[arg-type]
    return BudgetScope(ScopeRef(kind, id), policy)  # type: ignore[arg-type]


async def test_reserve_then_settle_the_real_cost(backend: Backend) -> None:
    ledger = backend.ledger()
    scope = budget("0.01")  # 10_000 micro-dollars
    res = await ledger.reserve([scope], 4_000)
    status = await ledger.status(scope)
    assert (status.spent, status.held, status.remaining) == (0, 4_000, 6_000)
    await ledger.settle(res, 1_500)
    await ledger.settle(res, 1_500)  # idempotent
    status = await ledger.status(scope)
    assert (status.spent, status.held, status.remaining) == (1_500, 0, 8_500)


async def test_refusal_names_the_scope_and_when_it_resets(backend: Backend) -> None:
    ledger = backend.ledger()
    key, team = budget("1"), budget("0.001", "monthly", kind="team", id="t1")
    await ledger.reserve([key, team], 600)
    with pytest.raises(BudgetExceededError) as caught:
        await ledger.reserve([key, team], 600)
    err = caught.value
    assert err.status == 429 and err.code == "budget_exceeded" and err.param == "team.budget"
    assert "team t1" in err.message and "resets 2023-12-01T00:00:00Z" in err.message
    assert err.retry_after == pytest.approx(period_of("monthly", T0).end - T0)  # type: ignore[operator]
    assert (await ledger.status(key)).held == 600  # the refused request held nothing


async def test_fifty_concurrent_requests_never_overspend(backend: Backend) -> None:
    """The in-flight bound: with costs within their holds, spend never passes the budget."""
    ledgers = [backend.ledger(), backend.ledger()]  # two replicas on Redis
    scope = budget("0.001")  # 1000 micro-dollars; each request may cost up to 90
    rng = random.Random(7)
    admitted = refused = 0

    async def request(i: int) -> None:
        nonlocal admitted, refused
        ledger = ledgers[i % 2]
        try:
            res = await ledger.reserve([scope], 90)
        except BudgetExceededError:
            refused += 1
            return
        admitted += 1
        await asyncio.sleep(rng.random() / 100)
        await ledger.settle(res, rng.randint(30, 90))

    await asyncio.gather(*(request(i) for i in range(50)))
    status = await ledgers[0].status(scope)
    assert status.held == 0 and status.spent <= 1_000
    assert admitted >= 11 and refused > 0  # refunds of unused holds let more in than 1000/90


async def test_overspend_is_bounded_by_the_excess_in_flight(backend: Backend) -> None:
    """When requests cost more than they held (an upstream ignoring max_tokens), the budget
    is passed by no more than those requests' excess."""
    ledger = backend.ledger()
    scope = budget("0.001")
    holds: list[Reservation] = []
    results = await asyncio.gather(
        *(ledger.reserve([scope], 100) for _ in range(50)), return_exceptions=True
    )
    holds = [r for r in results if isinstance(r, Reservation)]
    assert len(holds) == 10
    assert all(isinstance(r, BudgetExceededError) for r in results if r not in holds)
    await asyncio.gather(*(ledger.settle(r, 130) for r in holds))
    spent = (await ledger.status(scope)).spent
    assert spent == 1_300 <= 1_000 + sum(130 - r.amount for r in holds)
    with pytest.raises(BudgetExceededError):
        await ledger.reserve([scope], 0)  # spent: even a free request is refused now


async def test_a_stream_may_start_on_what_is_left(backend: Backend) -> None:
    ledger = backend.ledger()
    scope = budget("0.001")
    await ledger.settle(await ledger.reserve([scope], 900), 900)
    with pytest.raises(BudgetExceededError):
        await ledger.reserve([scope], 500)
    with pytest.raises(BudgetExceededError):
        await ledger.reserve([scope], 500, minimum=150)
    res = await ledger.reserve([scope], 500, minimum=50)
    assert res.amount == 100


async def test_extend_holds_more_while_the_budget_allows(backend: Backend) -> None:
    ledger = backend.ledger()
    scope = budget("0.001")
    res = await ledger.reserve([scope], 400)
    assert await ledger.extend(res, 500)
    assert res.amount == 900
    assert not await ledger.extend(res, 200)
    assert (await ledger.status(scope)).held == 900
    await ledger.settle(res, 950)
    assert not await ledger.extend(res, 1)  # settled
    status = await ledger.status(scope)
    assert (status.spent, status.held) == (950, 0)


async def test_thresholds_fire_once_per_period_and_reset(backend: Backend) -> None:
    ledger = backend.ledger()
    scope = budget("0.001")
    for _ in range(3):
        await ledger.settle(await ledger.reserve([scope], 200), 200)  # 20% steps
    kinds = [(a.kind, a.data.get("threshold")) for a in backend.alerts]
    assert kinds == [("budget.threshold", 0.5)]  # 400 then 600: 50% once, 80% not yet
    await ledger.settle(await ledger.reserve([scope], 200), 200)
    await ledger.settle(await ledger.reserve([scope], 200), 200)
    thresholds = [a.data["threshold"] for a in backend.alerts if a.kind == "budget.threshold"]
    assert thresholds == [0.5, 0.8, 1.0]
    alert = backend.alerts[-1]
    assert alert.severity == "critical" and alert.labels["period"] == "d2023-11-14"
    for _ in range(2):
        with pytest.raises(BudgetExceededError):
            await ledger.reserve([scope], 1)
    assert [a.kind for a in backend.alerts].count("budget.exceeded") == 1
    backend.clock.now = T0 + DAY  # a new day: a new counter, nothing spent, nothing fired
    status = await ledger.status(scope)
    assert (status.spent, status.period.key) == (0, "d2023-11-15")
    await ledger.settle(await ledger.reserve([scope], 600), 600)
    assert [a.data.get("threshold") for a in backend.alerts][-1] == 0.5


async def test_periods_reset_on_their_schedule(backend: Backend) -> None:
    ledger = backend.ledger()
    scopes = [budget("1", p, id=p) for p in ("daily", "weekly", "monthly", "total")]
    await ledger.settle(await ledger.reserve(scopes, 100), 100)
    backend.clock.now = T0 + 2 * DAY  # Thursday: same week, same month
    spent = [(await ledger.status(s)).spent for s in scopes]
    assert spent == [0, 100, 100, 100]
    backend.clock.now = T0 + 6 * DAY  # the next Monday
    assert [(await ledger.status(s)).spent for s in scopes] == [0, 0, 100, 100]
    backend.clock.now = T0 + 17 * DAY  # December
    assert [(await ledger.status(s)).spent for s in scopes] == [0, 0, 0, 100]


def test_period_keys_and_bounds() -> None:
    day = period_of("daily", T0)
    assert (day.key, day.start, day.end) == ("d2023-11-14", 1_699_920_000.0, 1_700_006_400.0)
    week = period_of("weekly", T0)
    assert week.key == "w2023-W46" and week.start == 1_699_833_600.0  # Monday 13 Nov
    month = period_of("monthly", T0)
    assert month.key == "m2023-11" and month.end == 1_701_388_800.0
    assert period_of("total", T0).end is None
    assert period_of("weekly", 1_704_067_200.0).key == "w2024-W01"  # 1 Jan 2024, a Monday


async def test_a_dead_replicas_holds_expire() -> None:
    clock = Clock()
    scope = budget("0.001")
    async with redis_prefix() as (client, prefix):
        dead = RedisBudgetLedger(client, prefix=prefix, clock=clock, lease_ttl=30)
        alive = RedisBudgetLedger(client, prefix=prefix, clock=clock, lease_ttl=30)
        await dead.reserve([scope], 900)  # the replica dies holding 90% of the budget
        await dead.aclose()
        with pytest.raises(BudgetExceededError):
            await alive.reserve([scope], 200)
        clock.now = T0 + 31
        res = await alive.reserve([scope], 200)  # the expired hold was returned first
        await alive.settle(res, 100)
        status = await alive.status(scope)
        assert (status.spent, status.held) == (100, 0)
        await alive.aclose()
