"""Spend survives restarts: budget counters are rebuilt from the recorded usage, off the request
path, on the in-memory and the Redis ledger, from the in-memory and the SQLite trace store."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from opsgate.access.budgets.ledger import LedgerBase
from opsgate.access.budgets.memory import MemoryBudgetLedger
from opsgate.access.budgets.model import BudgetScope
from opsgate.access.budgets.redis import RedisBudgetLedger
from opsgate.access.budgets.seed import BudgetSeeder, StoreSpendLoader
from opsgate.access.limits.model import ScopeRef
from opsgate.access.principal import BudgetPolicy
from opsgate.store import MemoryTraceStore, SqlTraceStore, TraceRecord, dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from opsgate.store.repository import TraceStore
from tests.access.test_limits import T0, Clock
from tests.fixtures.redisdb import redis_prefix

DAY = 86_400
_ids = itertools.count()


def trace(
    at: float, cost: int, key: str = "k1", team: str | None = "t1", user: str | None = None
) -> TraceRecord:
    return TraceRecord(
        trace_id=f"tr-{next(_ids)}",
        started_at=at,
        duration_ms=5.0,
        endpoint="chat",
        model_requested="m",
        key_id=key,
        team_id=team,
        end_user=user,
        cost_micros=cost,
    )


def scope(kind: str, id: str, period: str = "daily", parent: str | None = None) -> BudgetScope:
    policy = BudgetPolicy(max_usd=Decimal("1"), period=period)  # type: ignore[arg-type]
    return BudgetScope(ScopeRef(kind, id, parent), policy)  # type: ignore[arg-type]


HISTORY = [
    trace(T0 - 2 * DAY, 5_000),  # Sunday: last ISO week, this month
    trace(T0 - 3600, 300, user="alice"),
    trace(T0 - 60, 200, team=None, user="bob"),
    trace(T0 - 30, 100, key="k2", team="t1"),
]


@pytest.fixture(params=["memory-store", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TraceStore]:
    if request.param == "memory-store":
        memory = MemoryTraceStore()
        await memory.write_batch(HISTORY)
        yield memory
        return
    url = f"sqlite:///{tmp_path / 'opsgate.db'}"
    await upgrade(url)
    engine = make_engine(url)
    try:
        sql = SqlTraceStore(engine)
        await sql.write_batch(HISTORY)
        yield sql
    finally:
        await dispose_engine(engine)


@pytest.fixture(params=["memory", "redis"])
async def ledgers(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Clock, list[LedgerBase]]]:
    """A clock and a fresh ledger (a restarted process, or a flushed Redis)."""
    clock = Clock()
    if request.param == "memory":
        yield clock, [MemoryBudgetLedger(clock=clock)]
        return
    async with redis_prefix() as (client, prefix):
        made: list[LedgerBase] = [
            RedisBudgetLedger(client, prefix=prefix, clock=clock) for _ in range(2)
        ]
        yield clock, made
        for ledger in made:
            await ledger.aclose()


async def test_warm_start_restores_spend_per_scope_and_period(
    store: TraceStore, ledgers: tuple[Clock, list[LedgerBase]]
) -> None:
    _, (ledger, *_) = ledgers
    seeder = BudgetSeeder(ledger, StoreSpendLoader(store))
    assert await seeder.warm() > 0
    assert (await ledger.status(scope("key", "k1"))).spent == 500  # today only
    assert (await ledger.status(scope("key", "k1", "monthly"))).spent == 5_500
    assert (await ledger.status(scope("key", "k1", "total"))).spent == 5_500
    assert (await ledger.status(scope("team", "t1"))).spent == 400
    assert (await ledger.status(scope("user", "alice", parent="k1"))).spent == 300
    assert (await ledger.status(scope("user", "alice", parent="k2"))).spent == 0
    assert (await ledger.status(scope("key", "k2", "weekly"))).spent == 100


async def test_warm_start_leaves_a_live_counter_alone(
    store: TraceStore, ledgers: tuple[Clock, list[LedgerBase]]
) -> None:
    """A replica starting next to one already serving must not add the history twice."""
    _, (ledger, *rest) = ledgers
    await BudgetSeeder(ledger, StoreSpendLoader(store)).warm()
    res = await ledger.reserve([scope("key", "k1")], 50)
    await ledger.settle(res, 50)
    second = rest[0] if rest else ledger
    assert await BudgetSeeder(second, StoreSpendLoader(store)).warm() == 0
    assert (await second.status(scope("key", "k1"))).spent == 550


async def test_a_counter_found_unseeded_is_seeded_in_the_background(
    store: TraceStore, ledgers: tuple[Clock, list[LedgerBase]]
) -> None:
    """Cold start without warm-up: the request path admits on what it counts, and the seeder
    adds what the database had before the counter was created, without counting live spend
    twice."""
    clock, (ledger, *_) = ledgers
    seeder = BudgetSeeder(ledger, StoreSpendLoader(store))
    key = scope("key", "k1")
    clock.now = T0 + 10
    res = await ledger.reserve([key], 70)  # creates the counter, unseeded
    await ledger.settle(res, 70)
    await store.write_batch([trace(T0 + 10, 70)])  # the writer records the same request
    assert (await ledger.status(key)).spent == 70
    assert list(ledger.unseeded) == [(key.ref.slug, "d2023-11-14")]
    assert await seeder.seed_pending() == 1
    assert (await ledger.status(key)).spent == 570  # 500 before this minute + 70 live
    assert await seeder.seed_pending() == 0
    res = await ledger.reserve([key], 1)  # seeded: not noted again
    assert not ledger.unseeded
    await ledger.settle(res, 0)


async def test_the_background_task_seeds_soon_after_a_request(
    store: TraceStore, ledgers: tuple[Clock, list[LedgerBase]]
) -> None:
    _, (ledger, *_) = ledgers
    seeder = BudgetSeeder(ledger, StoreSpendLoader(store), retry_s=30)
    seeder.start()
    try:
        await ledger.settle(await ledger.reserve([scope("team", "t1")], 1), 1)
        for _ in range(500):
            if seeder.seeded:
                break
            await asyncio.sleep(0.01)
        assert seeder.seeded == 1
        assert (await ledger.status(scope("team", "t1"))).spent == 401
    finally:
        await seeder.aclose()


async def test_an_unreachable_database_keeps_the_counter_queued(
    ledgers: tuple[Clock, list[LedgerBase]],
) -> None:
    _, (ledger, *_) = ledgers
    down = MemoryTraceStore()
    down.down = True
    seeder = BudgetSeeder(ledger, StoreSpendLoader(down))
    assert await seeder.warm() == 0  # logged, start-up goes on
    await ledger.settle(await ledger.reserve([scope("key", "k1")], 5), 5)
    assert await seeder.seed_pending() == 0 and len(ledger.unseeded) == 1
    down.down = False
    assert await seeder.seed_pending() == 1


async def test_spend_earlier_in_the_counters_minute_is_seeded(
    store: TraceStore, ledgers: tuple[Clock, list[LedgerBase]]
) -> None:
    """The bug: a counter created at 12:00:40 was seeded with the spend before 12:00:00, so
    what was spent at 12:00:05 counted only after a restart (whose warm-up reads it all)."""
    clock, (ledger, *_) = ledgers
    seeder = BudgetSeeder(ledger, StoreSpendLoader(store))
    key = scope("key", "k1")
    await store.write_batch([trace(T0 + 5, 40), trace(T0 + 39.5, 2)])
    clock.now = T0 + 40.5
    res = await ledger.reserve([key], 7, at=T0 + 40)  # the request started at T0 + 40
    await ledger.settle(res, 7)
    await store.write_batch([trace(T0 + 40, 7)])  # the same request, recorded
    assert await seeder.seed_pending() == 1
    assert (await ledger.status(key)).spent == 500 + 40 + 2 + 7
    fresh = MemoryBudgetLedger(clock=clock)  # a restart: warm-up reads the database
    await BudgetSeeder(fresh, StoreSpendLoader(store)).warm()
    assert (await fresh.status(key)).spent == 500 + 40 + 2 + 7


def attached_at(since: float, period: str = "daily") -> BudgetScope:
    policy = BudgetPolicy(max_usd=Decimal("1"), period=period, since=since)  # type: ignore[arg-type]
    return BudgetScope(ScopeRef("key", "k1"), policy)


async def test_a_budget_attached_mid_minute_counts_what_starts_after_it(
    store: TraceStore, ledgers: tuple[Clock, list[LedgerBase]]
) -> None:
    clock, (ledger, *_) = ledgers
    seeder = BudgetSeeder(ledger, StoreSpendLoader(store))
    await store.write_batch([trace(T0 + 5, 40)])  # before the budget: never counted
    budget = attached_at(T0 + 20)
    await store.write_batch([trace(T0 + 22, 3)])  # after it, before its counter existed
    clock.now = T0 + 30
    res = await ledger.reserve([budget], 9, at=T0 + 29)
    await ledger.settle(res, 9)
    await store.write_batch([trace(T0 + 29, 9)])
    assert await seeder.seed_pending() == 1
    assert (await ledger.status(budget)).spent == 3 + 9
    assert (await ledger.status(scope("key", "k1"))).spent == 0  # the whole day's: no counter
    clock.now = T0 + 3000  # a restart 50 minutes later (same day): warm-up finds the same
    fresh = MemoryBudgetLedger(clock=clock)
    await BudgetSeeder(fresh, StoreSpendLoader(store)).warm(budgets=[budget])
    assert (await fresh.status(budget)).spent == 3 + 9
    # attached again later: a counter of its own, from nothing
    again = attached_at(T0 + 2900)
    assert (await fresh.status(again)).spent == 0
