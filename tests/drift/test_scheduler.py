"""The drift scheduler for real (SQLite and PostgreSQL): the background loop runs a due monitor
against the store and acts on its result, stops on shutdown, and outlives a failing monitor;
replicas sharing one database evaluate each monitor once per period between them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from opsgate.alerts import Alert
from opsgate.audit import AuditLog
from opsgate.cache.embed import EmbedderUnavailableError
from opsgate.config.drift import DriftConfig
from opsgate.drift import DriftSampler, DriftService, DriftStore
from opsgate.store import dispose_engine, make_engine
from opsgate.telemetry.drift_metrics import DriftMetrics
from tests.drift.test_store import sample
from tests.store.conftest import Backend, backend, empty_backend  # noqa: F401 (fixtures)

MIN = 60.0
WAIT = 30.0  # generous: the loop shares two busy cores with the rest of the suite


def no_embedder() -> Any:
    raise EmbedderUnavailableError("no embedder in this test")


class Replica:
    """One gateway's drift service on its own engine (a replica's own connection pool)."""

    def __init__(self, url: str, config: dict[str, Any], clock: Callable[[], float]) -> None:
        self.engine = make_engine(url)
        self.store = DriftStore(self.engine)
        self.config = DriftConfig.model_validate(config)
        self.registry = CollectorRegistry()
        self.alerts: list[Alert] = []
        sampler = DriftSampler(lambda: self.config, self.store, no_embedder)
        self.service = DriftService(
            lambda: self.config,
            self.store,
            sampler,
            emit=self.emit,
            metrics=DriftMetrics(self.registry),
            audit=AuditLog(self.engine),
            clock=clock,
        )

    def emit(self, alert: Alert) -> bool:
        self.alerts.append(alert)
        return True

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def aclose(self) -> None:
        await self.service.aclose()
        await dispose_engine(self.engine)


def stats_monitor(name: str = "lengths", **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "stats",
        "window": 10 * MIN,
        "every": 10 * MIN,
        "reference": {"type": "trailing", "window": 60 * MIN},
        "statistics": ["prompt_length"],
        "min_samples": 20,
        **more,
    }


async def shifted_samples(store: DriftStore, now: float) -> None:
    """Prompt lengths that grew tenfold: 40 reference samples, 40 current ones."""
    ref = [sample(i % 20 + 10, now - 30 * MIN - i) for i in range(40)]
    cur = [sample(i % 20 + 200, now - MIN - i) for i in range(40)]
    await store.add_samples(ref + cur)


async def poll(check: Callable[[], Any], within: float = WAIT) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


@pytest.fixture
async def replicas(backend: Backend) -> AsyncIterator[Callable[..., Replica]]:  # noqa: F811
    made: list[Replica] = []

    def make(config: dict[str, Any], clock: Callable[[], float] = time.time) -> Replica:
        made.append(Replica(backend.url, config, clock))
        return made[-1]

    yield make
    for r in made:
        await r.aclose()


async def test_the_loop_runs_a_due_monitor_and_acts_on_its_result(
    replicas: Callable[..., Replica],
) -> None:
    quiet = stats_monitor("quiet", scope={"model": "nobody"})
    gw = replicas({"interval": 0.05, "monitors": [stats_monitor(), quiet]})
    await shifted_samples(gw.store, time.time())
    await gw.service.start()

    async def both() -> dict[str, Any]:
        latest = await gw.store.latest()
        return latest if len(latest) == 2 else {}

    latest = await poll(both)
    assert latest["lengths"]["state"] == "drift", latest["lengths"]
    assert (latest["lengths"]["n_ref"], latest["lengths"]["n_cur"]) == (40, 40)
    assert latest["quiet"]["state"] == "insufficient_data"
    assert [a.kind for a in gw.alerts] == ["drift.detected"]
    proposals = await gw.store.proposals(status="open")
    assert [p["monitor"] for p in proposals] == ["lengths"]
    assert gw.metric("opsgate_drift_state", monitor="lengths") == 2.0
    assert gw.metric("opsgate_drift_claims_total", outcome="won") == 2.0


async def test_shutdown_cancels_the_loop(replicas: Callable[..., Replica]) -> None:
    gw = replicas({"interval": 0.05, "monitors": [stats_monitor()]})
    await gw.service.start()
    assert await poll(gw.store.latest)
    task = gw.service._task
    assert task is not None and not task.done()
    await gw.service.aclose()
    assert task.cancelled() and gw.service._task is None
    count = len(await gw.store.results("lengths"))
    assert await gw.service.tick() == []  # not due: the loop's own run was its last
    assert len(await gw.store.results("lengths")) == count


async def test_a_failing_monitor_is_logged_counted_and_the_loop_goes_on(
    replicas: Callable[..., Replica], caplog: pytest.LogCaptureFixture
) -> None:
    broken = {"name": "topics", "kind": "input", "window": 10 * MIN, "every": 10 * MIN}
    gw = replicas({"interval": 0.05, "monitors": [broken, stats_monitor()]})
    async with gw.engine.begin() as conn:  # results cannot be written: every run fails
        await conn.execute(text("ALTER TABLE drift_results RENAME TO drift_results_away"))
    caplog.set_level(logging.ERROR, logger="opsgate.drift")
    await gw.service.start()

    async def failed_twice() -> bool:
        return gw.metric("opsgate_drift_scheduler_failures_total", monitor="lengths") >= 2

    assert await poll(failed_twice)
    assert any("drift monitor lengths could not be run" in r.getMessage() for r in caplog.records)
    assert gw.service._task is not None and not gw.service._task.done()
    async with gw.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE drift_results_away RENAME TO drift_results"))

    async def both() -> dict[str, Any]:
        latest = await gw.store.latest()
        return latest if len(latest) == 2 else {}

    latest = await poll(both)
    assert latest["topics"]["state"] == "error"  # its embedder is missing: said, not raised
    assert "embedder unavailable" in latest["topics"]["reason"]
    assert latest["lengths"]["state"] == "insufficient_data"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_replicas_evaluate_each_monitor_once_per_period(
    replicas: Callable[..., Replica],
) -> None:
    clock = Clock()
    config = {"interval": 3600, "monitors": [stats_monitor(), stats_monitor("other")]}
    gws = [replicas(config, clock) for _ in range(3)]
    await shifted_samples(gws[0].store, clock.now)
    for period in range(3):
        rounds = [await asyncio.gather(*(g.service.tick() for g in gws)) for _ in range(2)]
        ran = [row["monitor"] for r in rounds for rows in r for row in rows]
        assert sorted(ran) == ["lengths", "other"], (period, ran)
        clock.now += 10 * MIN
    for name in ("lengths", "other"):
        results = await gws[0].store.results(name)
        assert len(results) == 3 and results[-1]["state"] == "drift"  # then its window moved on
    won = sum(g.metric("opsgate_drift_claims_total", outcome="won") for g in gws)
    assert won == 6
    assert sum(len(g.alerts) for g in gws) == 2  # entered drift once each, whoever ran it
    assert len(await gws[0].store.proposals()) == 2


async def test_a_manual_run_is_not_claimed_and_counts_as_the_periods_run(
    replicas: Callable[..., Replica],
) -> None:
    clock = Clock()
    a, b = (replicas({"interval": 3600, "monitors": [stats_monitor()]}, clock) for _ in "ab")
    assert [r["monitor"] for r in await a.service.run()] == ["lengths"]
    assert await b.service.tick() == []  # a result from the last `every` seconds
    clock.now += 10 * MIN
    assert [r["monitor"] for r in await b.service.tick()] == ["lengths"]
    assert len(await a.store.results("lengths")) == 2
