"""Alert events: stored in memory, SQLite and PostgreSQL alike, and listed by the admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from opsgate.alerts import Alert, AlertEventStore, MemoryAlertEventStore
from opsgate.alerts.sql import SqlAlertEventStore
from opsgate.app import create_app
from opsgate.store import dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from tests.fixtures.gateway import make_config
from tests.store.conftest import _pg_database

T = 1_700_000_000.0


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AlertEventStore]:
    if request.param == "memory":
        yield MemoryAlertEventStore()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'opsgate.db'}"
        await upgrade(url)
        engine = make_engine(url)
        yield SqlAlertEventStore(engine)
        await dispose_engine(engine)
        return
    async with _pg_database() as backend:
        await upgrade(backend.url)
        engine = make_engine(backend.url)
        yield SqlAlertEventStore(engine)
        await dispose_engine(engine)


def alerts() -> list[Alert]:
    return [
        Alert(
            "budget.threshold",
            "50% spent",
            labels={"id": "k1"},
            data={"t": 0.5},
            id="a1",
            created_at=T,
        ),
        Alert("budget.exceeded", "exhausted", severity="critical", id="a2", created_at=T + 10),
        Alert("drift.score", "drifted", severity="info", id="a3", created_at=T + 20),
    ]


async def test_add_mark_and_list(store: AlertEventStore) -> None:
    for a in alerts():
        await store.add(a)
    await store.add(alerts()[0])  # idempotent by id
    await store.mark("a1", "delivered", 3, None)
    await store.mark("a2", "failed", 6, "webhook: HTTP 500")
    listed = await store.list_events()
    assert [e.alert.id for e in listed] == ["a3", "a2", "a1"]
    first = listed[-1]
    assert (first.status, first.attempts, first.alert.labels, first.alert.data) == (
        "delivered",
        3,
        {"id": "k1"},
        {"t": 0.5},
    )
    assert listed[1].last_error == "webhook: HTTP 500"
    assert [e.alert.id for e in await store.list_events(kind="budget.*")] == ["a2", "a1"]
    assert [e.alert.id for e in await store.list_events(kind="drift.score")] == ["a3"]
    assert [e.alert.id for e in await store.list_events(since=T + 5)] == ["a3", "a2"]
    assert [e.alert.id for e in await store.list_events(limit=1)] == ["a3"]
    assert await store.list_events(kind="budget_%") == []  # no wildcards smuggled in


async def test_admin_route_lists_events(tmp_path: Path) -> None:
    store = MemoryAlertEventStore()
    for a in alerts():
        await store.add(a)

    for master, status in ((None, 200), ("mk", 401)):
        env = {"OPSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'gw.db'}"}
        if master:
            env["OPSGATE_MASTER_KEY"] = master
        app = create_app(make_config({"traces": {"enabled": False}}, env))
        app.state.gateway.admission.alert_events = store  # what the mounted route reads
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            resp = await http.get("/admin/v1/alerts", params={"kind": "budget.*", "limit": "5"})
            assert resp.status_code == status, resp.text
            auth = {"authorization": f"Bearer {master}"} if master else {}
            resp = await http.get("/admin/v1/alerts", headers=auth)
            body = resp.json()
            assert body["object"] == "list"
            assert [e["id"] for e in body["data"]] == ["a3", "a2", "a1"]
            assert body["data"][0]["delivery"] == {
                "status": "pending",
                "attempts": 0,
                "last_error": None,
            }
            since = {"since": "2023-11-14T22:13:25Z"}
            resp = await http.get("/admin/v1/alerts", params=since, headers=auth)
            assert [e["id"] for e in resp.json()["data"]] == ["a3", "a2"]
            for bad in ({"limit": "0"}, {"sort": "x"}, {"since": "yesterday"}):
                resp = await http.get("/admin/v1/alerts", params=bad, headers=auth)
                assert resp.status_code == 400, bad
        await app.state.gateway.aclose()
