"""The compliance admin API with real keys and roles: body reads decrypt, need the right role and
leave an audit entry; every admin action is audited; export, erasure and the audit log are for
admins only. SQLite and PostgreSQL (`database_url`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from opsgate.store import dispose_engine, make_engine
from opsgate.store.crypto import is_sealed
from opsgate.store.tables.traces import traces
from tests.access.conftest import GatewayStarter, access_gateway, database_url
from tests.access.helpers import Client, World, seed
from tests.compliance.helpers import new_keys

__all__ = ["access_gateway", "database_url"]
pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGATE_ENCRYPTION_KEYS", new_keys("api-k1"))


def _journal(folder: Path) -> str:
    """The test's own journal (PostgreSQL's default is the working directory, shared)."""
    return str(folder / "journal.jsonl")


def _trace_of(master: Client, key: str) -> str:
    assert master.chat(key=key).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = master.ok("GET", "/admin/v1/traces", params={"team_id": "team-a"})["data"]
        if found:
            return str(found[0]["id"])
        time.sleep(0.05)
    raise AssertionError("the trace never reached the store")


async def _stored_request_body(url: str, trace_id: str) -> bytes:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            stmt = select(traces.c.request_body).where(traces.c.trace_id == trace_id)
            return bytes((await conn.execute(stmt)).scalar_one())
    finally:
        await dispose_engine(engine)


def _audit(master: Client, **params: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = master.ok("GET", "/admin/v1/audit", params=params)["data"]
    return data


def test_body_reads_decrypt_need_the_role_and_are_audited(
    database_url: str, access_gateway: GatewayStarter, tmp_path: Path
) -> None:
    master = access_gateway(database_url, store_bodies="full", journal_path=_journal(tmp_path))
    world = seed(master)
    trace_id = _trace_of(master, world.keys["member:a"])
    assert is_sealed(asyncio.run(_stored_request_body(database_url, trace_id)))

    path = f"/admin/v1/traces/{trace_id}?include_bodies=true"
    body = master.ok("GET", path)
    assert "say hello" in body["request_body"]["data"], "decrypted for the reader"
    team_admin = master.as_(world.keys["team_admin:a"])
    assert "say hello" in team_admin.ok("GET", path)["request_body"]["data"]
    viewer = master.as_(world.keys["viewer:a"]).call("GET", path)
    assert viewer.status_code == 403, "viewers never read bodies"
    other = master.as_(world.keys["member:b"]).call("GET", path)
    assert other.status_code == 404, "another team's trace does not exist for them"
    without = master.ok("GET", f"/admin/v1/traces/{trace_id}")
    assert "request_body" not in without and without["has_request_body"] is True

    reads = _audit(master, action="trace.read_bodies")
    assert [(e["actor"], e["target"]) for e in reads] == [
        (f"key:{world.key_ids['team_admin:a']}", f"trace:{trace_id}"),
        ("master", f"trace:{trace_id}"),
    ]
    assert all("say hello" not in str(e) for e in _audit(master, limit="1000"))


def test_every_admin_action_is_audited_and_reads_are_not(
    database_url: str, access_gateway: GatewayStarter, tmp_path: Path
) -> None:
    master = access_gateway(database_url, journal_path=_journal(tmp_path))
    world = seed(master)
    made = master.ok("POST", "/admin/v1/keys", {"alias": "temp", "role": "member"})
    master.ok("POST", f"/admin/v1/keys/{made['id']}/revoke")
    master.ok("POST", "/admin/v1/config/reload")
    master.ok("POST", "/admin/v1/cache/purge", {"all": True})
    viewer = master.as_(world.keys["viewer:a"])
    refused = viewer.call("POST", "/admin/v1/keys", {"role": "member"})
    assert refused.status_code == 403
    master.ok("GET", "/admin/v1/keys")  # a read: not an action

    entries = _audit(master, limit="1000")
    seen = [(e["actor"], e["action"], e["target"], e["detail"]["status"]) for e in entries]
    assert seen[:5] == [
        (f"key:{world.key_ids['viewer:a']}", "keys.create", "/admin/v1/keys", 403),
        ("master", "cache.purge", "/admin/v1/cache/purge", 200),
        ("master", "config.reload", "/admin/v1/config/reload", 200),
        ("master", "keys.revoke", f"/admin/v1/keys/{made['id']}/revoke", 200),
        ("master", "keys.create", "/admin/v1/keys", 201),
    ]
    assert not any(e["detail"].get("method") == "GET" for e in entries)
    assert made["key"] not in str(entries), "secrets never reach the log"
    seeded = sum(1 for e in entries if e["action"] in ("keys.create", "teams.create"))
    assert seeded >= 1 + 2 * 4 + 2, "the seeding's own creations are there too"
    verified = master.ok("POST", "/admin/v1/audit/verify")
    assert verified == {
        "object": "audit.verification",
        "ok": True,
        "checked": len(entries),
        "first_broken_seq": None,
        "reason": None,
        "head_hash": entries[0]["hash"],
        "head": f"{entries[0]['seq']}:{entries[0]['hash']}",
    }
    assert _audit(master, action="audit.verify")[0]["detail"]["ok"] is True
    ahead = f"{entries[0]['seq'] + 50}:{entries[0]['hash']}"
    cut = master.ok("POST", "/admin/v1/audit/verify", params={"anchor": ahead})
    assert cut["ok"] is False and "cut off" in cut["reason"]
    refused = master.call("POST", "/admin/v1/audit/verify", params={"anchor": "nope"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_anchor"


def test_audit_pages_and_parameters(access_gateway: GatewayStarter, tmp_path: Any) -> None:
    master = access_gateway(f"sqlite:///{tmp_path / 'pages.db'}")
    for n in range(7):
        master.ok("POST", "/admin/v1/teams", {"name": f"team {n}"})
    seqs: list[int] = []
    params = {"limit": "3", "action": "teams.create"}
    for _ in range(5):
        page = master.ok("GET", "/admin/v1/audit", params=params)
        seqs += [e["seq"] for e in page["data"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == len(set(seqs)) == 7
    for bad in ({"limit": "0"}, {"limit": "x"}, {"cursor": "-1"}, {"sort": "asc"}):
        resp = master.call("GET", "/admin/v1/audit", params=bad)
        assert resp.status_code == 400, (bad, resp.text)


def test_compliance_routes_are_for_admins_only(
    database_url: str, access_gateway: GatewayStarter, tmp_path: Path
) -> None:
    master = access_gateway(database_url, store_bodies="full", journal_path=_journal(tmp_path))
    world: World = seed(master)
    routes = [
        ("GET", "/admin/v1/end-users/eu-1/export"),
        ("DELETE", "/admin/v1/end-users/eu-1"),
        ("GET", "/admin/v1/audit"),
        ("POST", "/admin/v1/audit/verify"),
    ]
    for caller in ("team_admin:a", "member:a", "viewer:a", "service:a"):
        for method, path in routes:
            resp = master.as_(world.keys[caller]).call(method, path)
            assert resp.status_code == 403, (caller, method, path, resp.text)
    for method, path in routes:
        assert master.as_(world.keys["admin:-"]).call(method, path).status_code == 200


def test_export_holds_the_end_users_traces_with_bodies(
    database_url: str, access_gateway: GatewayStarter, tmp_path: Path
) -> None:
    master = access_gateway(database_url, store_bodies="full", journal_path=_journal(tmp_path))
    for user in ("eu-export", "eu-export", "eu-other"):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": user}]}
        resp = master.call("POST", "/v1/chat/completions", {**body, "user": user})
        assert resp.status_code == 200, resp.text
    deadline = time.monotonic() + 30
    while len(master.ok("GET", "/admin/v1/traces")["data"]) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    export = master.ok("GET", "/admin/v1/end-users/eu-export/export")
    assert export["object"] == "end_user.export" and export["end_user"] == "eu-export"
    data = export["data"]
    assert [t["end_user"] for t in data["traces"]] == ["eu-export", "eu-export"]
    assert all(t["spans"] for t in data["traces"])
    assert all("eu-export" in t["request_body"]["data"] for t in data["traces"])
    assert sum(r["requests"] for r in data["tables"]["usage_minute"]) == 2
    assert data["journal"] == [] and data["alert_events"] == [] and data["cache"] is None
    entry = _audit(master, action="gdpr.export")[0]
    assert entry["target"].startswith("end_user:sha256:") and "eu-export" not in str(entry)
    assert httpx.get(f"{master.base}/admin/v1/end-users/eu-export/export").status_code == 401
