"""Erasure by end user on a real gateway: afterwards no column of any table holds the id, the
cache (memory or Redis) serves none of their answers, other users are untouched, and the erasure
is audited by pseudonym. The journal holder is tested on its own file."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync
from sqlalchemy import insert

from opsgate.audit import pseudonym
from opsgate.compliance.holders_local import JournalData
from opsgate.store import dispose_engine, make_engine
from opsgate.store.crypto import BodyCipher, Keyring, seal_record
from opsgate.store.journal import Journal
from opsgate.store.tables.alerts import alert_events
from tests.compliance.helpers import bodies_config, find_everywhere, new_keys, wait_traces
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.redisdb import REDIS_URL
from tests.fixtures.upstream import FakeUpstream
from tests.store.conftest import make_trace

pytestmark = pytest.mark.integration

ERASED = "eu-erase-4f1c"
KEPT = "eu-keep-9a2b"


def _chat(gw: GatewayServer, user: str, n: int) -> httpx.Response:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": f"question {n} from {user}"}],
        "temperature": 0,
        "user": user,
    }
    resp = httpx.post(f"{gw.url}/chat/completions", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp


async def _add_alerts(url: str) -> None:
    """Budget alerts as `access.budgets` writes them for an end user's budget."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for user in (ERASED, KEPT):
                await conn.execute(
                    insert(alert_events).values(
                        id=uuid.uuid4().hex,
                        created_at=time.time(),
                        kind="budget.threshold",
                        severity="warning",
                        message=f"end user {user!r} of key k1 used 80% of its budget",
                        labels={"scope": "user", "id": user, "period": "2026-11", "key_id": "k1"},
                        data={"used_usd": "8"},
                        status="sent",
                        attempts=1,
                    )
                )
    finally:
        await dispose_engine(engine)


def _values(client: redis_sync.Redis, key: bytes) -> list[Any]:
    kind = client.type(key).decode()
    if kind == "string":
        return [client.get(key)]
    if kind == "hash":
        return list(client.hgetall(key).values())
    if kind == "set":
        return list(client.smembers(key))
    if kind == "zset":
        return list(client.zrange(key, 0, -1))
    if kind == "list":
        return list(client.lrange(key, 0, -1))
    return []


def _redis_mentions(prefix: str, needle: str) -> list[str]:
    client = redis_sync.Redis.from_url(REDIS_URL)
    found = []
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            values = _values(client, key)
            if needle.encode() in key or any(needle.encode() in (v or b"") for v in values):
                found.append(key.decode())
    finally:
        client.close()
    return found


def _erasure_scenario(gw: GatewayServer, url: str, redis_prefix: str | None) -> None:
    for n in range(3):
        assert _chat(gw, ERASED, n).headers["x-opsgate-cache"] == "miss"
    for n in range(2):
        _chat(gw, KEPT, n)
    wait_traces(gw.base, 5)
    asyncio.run(_add_alerts(url))
    before = asyncio.run(find_everywhere(url, ERASED))
    assert {"traces.end_user", "usage_minute.end_user", "alert_events.labels"} <= set(before)
    if redis_prefix is not None:
        assert _redis_mentions(redis_prefix, ERASED), "the cache holds the user's entries"

    resp = httpx.delete(f"{gw.base}/admin/v1/end-users/{ERASED}", timeout=60)
    assert resp.status_code == 200, resp.text
    receipt = resp.json()
    counts = receipt["counts"]
    assert counts["traces"] == 3 and counts["spans"] >= 3 and counts["usage_minute"] >= 1
    assert counts["alert_events"] == 1 and counts["cache.exact"] == 3 and counts["journal"] == 0
    assert receipt["total"] == sum(counts.values()) and receipt["end_user"] == ERASED

    assert asyncio.run(find_everywhere(url, ERASED)) == {}, "the id is in no column of any table"
    kept = asyncio.run(find_everywhere(url, KEPT))
    assert kept["traces.end_user"] == 2 and kept["alert_events.labels"] == 1, kept
    if redis_prefix is not None:
        assert _redis_mentions(redis_prefix, ERASED) == []
        assert _redis_mentions(redis_prefix, KEPT), "other users' entries stay"
    assert _chat(gw, ERASED, 0).headers["x-opsgate-cache"] == "miss", "their answers are gone"
    assert _chat(gw, KEPT, 0).headers["x-opsgate-cache"] == "hit-exact"

    audit = httpx.get(f"{gw.base}/admin/v1/audit", params={"action": "gdpr.erase"}, timeout=30)
    entries = audit.json()["data"]
    assert [e["detail"]["status"] for e in entries] == ["completed", "started"]
    assert {e["target"] for e in entries} == {pseudonym("end_user", ERASED)}
    assert entries[0]["detail"]["counts"] == counts
    assert ERASED not in audit.text


def test_erasure_on_sqlite_with_the_memory_cache(
    db_url: str, gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    gw = gateway(bodies_config(upstreams["alpha"], tmp_path))
    _erasure_scenario(gw, db_url, None)


def test_erasure_on_postgresql_with_the_redis_cache(
    pg_url: str,  # first: the database outlives the gateway
    redis_prefix: str,
    gateway: GatewayFactory,
    upstreams: dict[str, FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("OPSGATE_ENCRYPTION_KEYS", new_keys("k1"))
    cache = {"exact": {"backend": "redis", "redis_url": REDIS_URL, "prefix": redis_prefix}}
    data = bodies_config(upstreams["alpha"], tmp_path, cache=cache)
    gw = gateway(data, {"OPSGATE_DATABASE_URL": pg_url})
    _erasure_scenario(gw, pg_url, redis_prefix)


def test_unknown_and_malformed_end_users(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    gw = gateway(bodies_config(upstreams["alpha"], tmp_path))
    base = f"{gw.base}/admin/v1/end-users"
    export = httpx.get(f"{base}/nobody-ever/export", timeout=30)
    assert export.status_code == 200
    assert export.json()["data"]["traces"] == [] and export.json()["data"]["journal"] == []
    erased = httpx.delete(f"{base}/nobody-ever", timeout=30)
    assert erased.status_code == 200 and erased.json()["total"] == 0
    for bad in ("%00x", "%20%20", "a%09b", "x" * 300):  # (a newline matches no route: 404)
        for method, path in (("GET", f"{base}/{bad}/export"), ("DELETE", f"{base}/{bad}")):
            resp = httpx.request(method, path, timeout=30)
            assert resp.status_code == 400, (method, bad, resp.text)
            assert resp.json()["error"]["code"] == "invalid_end_user"
    resp = httpx.get(f"{base}/someone/export", params={"format": "csv"}, timeout=30)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "unknown_parameter"
    slash = httpx.delete(f"{base}/tenant%2F42", timeout=30)
    assert slash.status_code == 200 and slash.json()["end_user"] == "tenant/42"


async def test_journal_lines_of_the_user_are_blanked_in_place(tmp_path: Path) -> None:
    cipher = BodyCipher(Keyring.parse(new_keys("j1"), source="t"))
    journal = Journal(tmp_path / "journal.jsonl")
    records = [
        seal_record(cipher, make_trace(i, end_user=ERASED if i % 2 else KEPT, request_body=b"p"))
        for i in range(6)
    ]
    journal.append_sync(records[:4])
    journal.path.rename(journal.replaying)  # as if a replay had started on these
    journal.append_sync(records[4:])
    holder = JournalData(lambda: journal, lambda: cipher)

    exported = await holder.export(ERASED)
    assert [r["trace_id"] for r in exported] == ["tr-000001", "tr-000003", "tr-000005"]
    assert exported[0]["request_body"] == {"encoding": "utf-8", "data": "p"}
    sizes = {p: p.stat().st_size for p in (journal.path, journal.replaying)}
    assert await holder.erase(ERASED) == {"journal": 3}
    assert {p: p.stat().st_size for p in sizes} == sizes, "offsets stay valid for a replay"
    left = [
        r.trace_id
        for f in (journal.replaying, journal.path)
        async for batch in journal.read_batches(f, 10)
        for r in batch
    ]
    assert left == ["tr-000000", "tr-000002", "tr-000004"]
    raw = journal.path.read_bytes() + journal.replaying.read_bytes()
    assert ERASED.encode() not in raw and KEPT.encode() in raw
    assert journal.corrupt == 0
    assert await holder.erase(ERASED) == {"journal": 0}
