"""The whole gateway on PostgreSQL through a cuttable TCP path: a database outage mid-load and a
graceful restart lose no trace. The shared server itself is never touched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.tables.traces import traces
from tests.fixtures.gateway import GatewayServer, make_config
from tests.store.conftest import Backend
from tests.store.proxy import TcpProxy

pytestmark = pytest.mark.integration
BODY = {"model": "chat-default", "messages": [{"role": "user", "content": "hi"}]}


def gateway_config(db_url: str, journal: Path) -> object:
    data = {
        "models": [
            {
                "name": "chat-default",
                "deployments": [
                    {
                        "provider": "simulator",
                        "model": "sim",
                        "options": {"ttft_ms": 0, "token_ms": 0},
                    }
                ],
            }
        ],
        "traces": {"journal_path": str(journal), "flush_interval": 0.05, "batch_size": 20},
    }
    return make_config(data, {"OPSGATE_DATABASE_URL": db_url})


def send(url: str, n: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(n):
            resp = client.post("/chat/completions", json={**BODY, "stream": i % 2 == 0})
            assert resp.status_code == 200, resp.text
            ids.append(resp.headers["x-opsgate-trace-id"])
    return ids


async def stored_ids(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set((await conn.execute(select(traces.c.trace_id))).scalars())
    finally:
        await dispose_engine(engine)


async def test_outage_then_graceful_restart_loses_nothing(
    pg_backend: Backend, proxy: TcpProxy, tmp_path: Path
) -> None:
    url = pg_backend.url_via(proxy.port)
    journal = tmp_path / "journal.jsonl"
    # started from a thread: the proxy lives on this test's event loop, which must keep running
    server = GatewayServer(gateway_config(url, journal))  # type: ignore[arg-type]
    await asyncio.to_thread(server.start)
    try:
        sent = await asyncio.to_thread(send, server.url, 40)
        proxy.cut()  # the database "goes down" mid-load; traffic must go on
        sent += await asyncio.to_thread(send, server.url, 60)
    finally:
        await asyncio.to_thread(server.stop)  # graceful: what the DB cannot take is journaled
    assert journal.exists() and journal.stat().st_size > 0
    before = await stored_ids(pg_backend.url)
    assert before < set(sent), "some traces waited in the journal"

    proxy.restore()
    # started from a thread: the proxy lives on this test's event loop, which must keep running
    server = GatewayServer(gateway_config(url, journal))  # type: ignore[arg-type]
    await asyncio.to_thread(server.start)
    try:
        sent += await asyncio.to_thread(send, server.url, 10)
        for _ in range(300):
            if set(sent) <= await stored_ids(pg_backend.url):
                break
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(server.stop)
    after = await stored_ids(pg_backend.url)
    assert after == set(sent), f"lost {len(set(sent) - after)} traces"
    engine = make_engine(pg_backend.url)
    try:
        async with engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(traces))).scalar_one()
    finally:
        await dispose_engine(engine)
    assert count == len(sent) == 110, "no duplicates either"
