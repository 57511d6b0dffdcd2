"""A backend that goes down answers admin routes with an OpenAI-shaped 503, never a 500.

Real outages only: the gateway's PostgreSQL reached through a TCP proxy that is then cut
(tests/store/proxy.py), and a Redis cache on a port nothing listens on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from opsgate.web.outage import OUTAGES, unavailable
from tests.fixtures.gateway import GatewayServer, make_config
from tests.store.conftest import Backend, dead_port
from tests.store.proxy import TcpProxy
from tests.ui.helpers import csrf_of, text_of

pytestmark = pytest.mark.integration
MODELS = [
    {
        "name": "chat-default",
        "deployments": [
            {"provider": "simulator", "model": "sim", "options": {"ttft_ms": 0, "token_ms": 0}}
        ],
    }
]
CHAT = {"model": "chat-default", "messages": [{"role": "user", "content": "hi"}], "user": "u-1"}


def assert_503(resp: httpx.Response, code: str) -> None:
    assert resp.status_code == 503, f"{resp.request.method} {resp.request.url}: {resp.text}"
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code, resp.text
    assert "Traceback" not in resp.text


@pytest.fixture
async def on_postgres(
    pg_backend: Backend, proxy: TcpProxy, tmp_path: Path
) -> AsyncIterator[GatewayServer]:
    """A gateway on PostgreSQL through `proxy`, that has served a request."""
    config = make_config(
        {"models": MODELS, "traces": {"journal_path": str(tmp_path / "journal.jsonl")}},
        {"OPSGATE_DATABASE_URL": pg_backend.url_via(proxy.port)},
    )
    server = GatewayServer(config)
    # started from a thread: the proxy lives on this test's event loop, which must keep running
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            resp = await http.post("/v1/chat/completions", json=CHAT)
            assert resp.status_code == 200, resp.text
            assert (await http.get("/admin/v1/audit")).status_code == 200  # the database answers
        yield server
    finally:
        await asyncio.to_thread(server.stop)


READS = [
    ("GET", "/admin/v1/traces", "store_unavailable"),
    ("GET", "/admin/v1/traces/tr-unknown", "store_unavailable"),
    ("GET", "/admin/v1/usage", "store_unavailable"),
    ("GET", "/admin/v1/audit", "store_unavailable"),
    ("POST", "/admin/v1/audit/verify", "store_unavailable"),
    ("GET", "/admin/v1/alerts", "store_unavailable"),
    ("GET", "/admin/v1/end-users/u-1/export", "store_unavailable"),
    ("DELETE", "/admin/v1/end-users/u-1", "store_unavailable"),
]


async def test_database_down_is_503_on_every_admin_route(
    on_postgres: GatewayServer, proxy: TcpProxy
) -> None:
    proxy.cut()
    async with httpx.AsyncClient(base_url=on_postgres.base, timeout=60) as http:
        for method, path, code in READS:
            assert_503(await http.request(method, path), code)
        # the same route still refuses bad input first, with its own status
        assert (await http.get("/admin/v1/traces", params={"nope": "1"})).status_code == 400


async def test_database_down_is_a_503_page_in_the_dashboard(
    on_postgres: GatewayServer, proxy: TcpProxy
) -> None:
    async with httpx.AsyncClient(base_url=on_postgres.base, timeout=60) as http:
        form = await http.get("/ui/login")
        data = {"key": "", "csrf_token": csrf_of(form.text), "next": ""}
        assert (await http.post("/ui/login", data=data)).status_code == 303  # open laptop
        assert (await http.get("/ui/traces")).status_code == 200
        proxy.cut()
        page = await http.get("/ui/traces")
    assert page.status_code == 503, page.text
    assert "database is unavailable" in text_of(page)
    assert page.headers["content-type"].startswith("text/html")


def test_cache_backend_down_is_503(tmp_path: Path) -> None:
    redis_url = f"redis://127.0.0.1:{dead_port()}/0"
    config = make_config(
        {
            "models": MODELS,
            "cache": {"enabled": True, "exact": {"backend": "redis", "redis_url": redis_url}},
        },
        {"OPSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'opsgate.db'}"},
    )
    with GatewayServer(config) as server, httpx.Client(base_url=server.base, timeout=60) as http:
        # the request path serves without the cache; only the cache's admin routes say 503
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert_503(http.get("/admin/v1/cache"), "cache_unavailable")
        assert_503(http.post("/admin/v1/cache/purge", json={"all": True}), "cache_unavailable")
        erase = http.post("/admin/v1/cache/erase", json={"end_user": "u-1"})
        assert_503(erase, "cache_unavailable")


async def test_a_refused_redis_connection_is_an_outage() -> None:
    client: Any = Redis.from_url(f"redis://127.0.0.1:{dead_port()}/0", socket_connect_timeout=5)
    try:
        with pytest.raises(OUTAGES) as info:
            await client.ping()
    finally:
        await client.aclose()
    assert unavailable(info.value).code == "redis_unavailable"
