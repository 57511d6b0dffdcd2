"""A budget's spend is the same before and after a restart: two gateway lifetimes on one SQLite
file, with the in-memory ledger (rebuilt from the database) and with Redis counters (kept, or
lost and rebuilt). A budget attached mid-minute counts exactly the requests that started
after it was attached (docs/access.md)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from opsgate.access.budgets.model import BudgetScope
from opsgate.access.budgets.redis import RedisBudgetLedger
from opsgate.access.limits.model import ScopeRef
from opsgate.access.principal import BudgetPolicy
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.redisdb import REDIS_URL, delete_prefix, redis_prefix
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration
MASTER = "mk-budget-restart"
MSG = [{"role": "user", "content": "say hello"}]


class Lifetime:
    """One gateway process's life on the shared database (and Redis prefix)."""

    def __init__(self, tmp: Path, fake: FakeUpstream, prefix: str | None) -> None:
        env = {"OPSGATE_DATABASE_URL": f"sqlite:///{tmp / 'opsgate.db'}"}
        env["OPSGATE_MASTER_KEY"] = MASTER
        if prefix is not None:
            env |= {"OPSGATE_REDIS_URL": REDIS_URL, "OPSGATE_REDIS_PREFIX": prefix}
        deployment = {
            "provider": "openai",
            "base_url": fake.url,
            "model": "up",
            "api_key": "sk-up",
            "price": {"input": 2, "output": 4},  # $ per million tokens: a few µ$ a request
        }
        data: dict[str, Any] = {
            "models": [{"name": "m", "deployments": [deployment]}],
            "router": {"retries": 0},
            "traces": {"flush_interval": 0.05, "journal_path": str(tmp / "journal.jsonl")},
        }
        if prefix is not None:
            data["limits"] = {"redis_prefix": prefix}
        self.server = GatewayServer(make_config(data, env)).start()
        self.http = httpx.Client(base_url=self.server.base, timeout=30)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"authorization": f"Bearer {MASTER}"}
        resp = self.http.request(method, path, json=body, headers=headers)
        assert resp.status_code in (200, 201), resp.text
        return resp.json()

    def chat(self, key: str) -> None:
        body = {"model": "m", "messages": MSG}
        resp = self.http.post("/v1/chat/completions", json=body, headers={"authorization": key})
        assert resp.status_code == 200, resp.text

    def traces(self, key_id: str, count: int) -> list[dict[str, Any]]:
        """The key's stored traces, once the writer has stored `count` of them."""
        deadline = time.monotonic() + 20
        while True:
            data = self.admin("GET", f"/admin/v1/traces?key_id={key_id}&limit=100")["data"]
            if len(data) >= count or time.monotonic() > deadline:
                assert len(data) == count
                return list(data)
            time.sleep(0.05)

    def stop(self) -> None:
        self.http.close()
        self.server.stop()


async def _spent(life: Lifetime, scope: BudgetScope, prefix: str | None) -> int:
    if prefix is None:  # the gateway's own in-memory ledger (idle between requests)
        return int((await life.server.gateway.ledger.status(scope)).spent)
    client = Redis.from_url(REDIS_URL)  # another replica's view of the shared counters
    try:
        return int((await RedisBudgetLedger(client, prefix=prefix).status(scope)).spent)
    finally:
        await client.aclose()


@pytest.mark.parametrize("ledger", ["memory", "redis-kept", "redis-lost"])
async def test_spend_is_the_same_before_and_after_a_restart(
    ledger: str, tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> None:
    async with redis_prefix() as (client, prefix_name):
        prefix = None if ledger == "memory" else prefix_name
        life = Lifetime(tmp_path, upstreams["alpha"], prefix)
        try:
            made = life.admin("POST", "/admin/v1/keys", {"alias": "app", "role": "service"})
            key, key_id = f"Bearer {made['key']}", made["id"]
            for _ in range(2):  # spend before the budget exists: it never counts
                life.chat(key)
            budget = {"max_usd": "10", "period": "daily"}
            attached = life.admin("PATCH", f"/admin/v1/keys/{key_id}", {"budget": budget})
            since = attached["budget"]["since"]
            for _ in range(3):
                life.chat(key)
            traces = life.traces(key_id, 5)
            after = [t for t in traces if t["started_at"] >= since]
            assert len(after) == 3 and all(t["cost_micros"] > 0 for t in traces)
            policy = BudgetPolicy(Decimal("10"), "daily", since=since)
            scope = BudgetScope(ScopeRef("key", key_id), policy)
            before = await _spent(life, scope, prefix)
            assert before == sum(t["cost_micros"] for t in after)
        finally:
            life.stop()
        if ledger == "redis-lost":
            await delete_prefix(client, prefix_name)  # Redis flushed while nothing ran
        life = Lifetime(tmp_path, upstreams["alpha"], prefix)
        try:
            assert await _spent(life, scope, prefix) == before
            life.chat(key)
            newest = life.traces(key_id, 6)[0]
            assert await _spent(life, scope, prefix) == before + newest["cost_micros"]
        finally:
            life.stop()


def test_the_attach_time_is_kept_when_the_budget_changes(
    tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> None:
    life = Lifetime(tmp_path, upstreams["alpha"], None)
    try:
        made = life.admin("POST", "/admin/v1/keys", {"role": "service", "budget": {"max_usd": "1"}})
        since = made["budget"]["since"]
        assert abs(since - time.time()) < 60
        raised = life.admin("PATCH", f"/admin/v1/keys/{made['id']}", {"budget": {"max_usd": "2"}})
        assert raised["budget"]["since"] == since  # raising it keeps what it counted
        life.admin("PATCH", f"/admin/v1/keys/{made['id']}", {"budget": None})
        again = life.admin("PATCH", f"/admin/v1/keys/{made['id']}", {"budget": {"max_usd": "2"}})
        assert again["budget"]["since"] > since  # detached and attached: counts afresh
    finally:
        life.stop()
