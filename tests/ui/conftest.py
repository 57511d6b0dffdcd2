"""A real gateway with seeded traffic for the dashboard tests: a team `ml` with a member key that
sent the traffic (through the `openai` SDK) and a viewer key, plus the master key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.fixtures.gateway import GatewayServer, make_config
from tests.ui.helpers import Clients, open_clients

MASTER = "mk-dashboard-test-0123456789"
XSS_PROMPT = "Summarise <script>window.__xss=1</script> please"
XSS_METADATA = '<img src=x onerror="window.__xss=2">'
SIM = {"provider": "simulator", "model": "sim-1", "price": {"input": 10, "output": 20}}
CONFIG: dict[str, Any] = {
    "models": [
        {
            "name": "chat-fast",
            "deployments": [{**SIM, "id": "sim-a", "options": {"ttft_ms": 2, "token_ms": 0.2}}],
        },
        {
            "name": "chat-flaky",
            "deployments": [{**SIM, "id": "sim-broken", "options": {"rate_500": 1.0}}],
        },
    ],
    "router": {"retries": 0},
    "traces": {"flush_interval": 0.05, "store_bodies": "full"},
}


@dataclass(frozen=True, slots=True)
class Seeded:
    server: GatewayServer
    member_key: str
    viewer_key: str
    xss_trace_id: str
    traces: int
    """How many traces the seeding produced (all visible to the master key)."""

    @property
    def base(self) -> str:
        return self.server.base

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, headers={"authorization": f"Bearer {MASTER}"}, timeout=20
        )


def _create(admin: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = admin.post(path, json=body)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def _traffic(server: GatewayServer, key: str) -> tuple[str, int]:
    """Chat requests of every kind the overview shows; returns (XSS trace id, trace count)."""
    client = openai.OpenAI(base_url=server.url, api_key=key, max_retries=0)
    sent = 0
    for i in range(8):
        meta = orjson.dumps({"app": "ui-test", "i": str(i)}).decode()
        client.chat.completions.create(
            model="chat-fast",
            messages=[{"role": "user", "content": f"question {i}"}],
            user=("alice", "bob")[i % 2],
            extra_headers={"x-opsgate-metadata": meta},
        )
        sent += 1
    for _ in range(2):  # the same deterministic request twice: a miss, then a cache hit
        client.chat.completions.create(
            model="chat-fast", messages=[{"role": "user", "content": "cache me"}], temperature=0
        )
        sent += 1
    stream = client.chat.completions.create(
        model="chat-fast", messages=[{"role": "user", "content": "stream"}], stream=True
    )
    for _ in stream:
        pass
    sent += 1
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="chat-flaky", messages=[{"role": "user", "content": "fail"}]
            )
        sent += 1
    raw = client.chat.completions.with_raw_response.create(
        model="chat-fast",
        messages=[{"role": "user", "content": XSS_PROMPT}],
        user="mallory",
        extra_headers={"x-opsgate-metadata": orjson.dumps({"note": XSS_METADATA}).decode()},
    )
    return raw.headers["x-opsgate-trace-id"], sent + 1


def _wait_for_traces(admin: httpx.Client, count: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        resp = admin.get("/admin/v1/traces", params={"limit": "1000"})
        assert resp.status_code == 200, resp.text
        if len(resp.json()["data"]) >= count:
            return
        assert time.monotonic() < deadline, f"only {len(resp.json()['data'])} of {count} traces"
        time.sleep(0.05)


def start_seeded(folder: Path) -> tuple[GatewayServer, Seeded]:
    env = {"OPSGATE_DATABASE_URL": f"sqlite:///{folder}/opsgate.db", "OPSGATE_MASTER_KEY": MASTER}
    server = GatewayServer(make_config(CONFIG, env)).start()
    with httpx.Client(
        base_url=server.base, headers={"authorization": f"Bearer {MASTER}"}, timeout=20
    ) as admin:
        _create(admin, "/admin/v1/teams", {"id": "ml", "name": "ML platform"})
        member = _create(
            admin,
            "/admin/v1/keys",
            {
                "alias": "ml-app",
                "role": "member",
                "team_id": "ml",
                "budget": {"max_usd": "50", "period": "monthly"},
                "limits": {"rpm": 600},
            },
        )
        viewer = _create(
            admin, "/admin/v1/keys", {"alias": "ml-viewer", "role": "viewer", "team_id": "ml"}
        )
        xss_trace, count = _traffic(server, member["key"])
        _wait_for_traces(admin, count)
    return server, Seeded(server, member["key"], viewer["key"], xss_trace, count)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One gateway per test module, seeded once (the dashboard only reads what it was sent)."""
    server, data = start_seeded(tmp_path_factory.mktemp("dashboard"))
    try:
        yield data
    finally:
        server.stop()


@pytest.fixture
def clients(seeded: Seeded) -> Iterator[Clients]:
    """HTTP clients on the seeded gateway, closed after the test."""
    yield from open_clients(seeded.base)
