"""`opsgate audit verify`, `opsgate gdpr export|erase` and `opsgate keys rotate-encryption |
new-encryption-key`, run as real processes against real databases and a real gateway."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select, update

from opsgate.audit import AuditLog
from opsgate.store import SqlTraceStore, dispose_engine, make_engine
from opsgate.store.crypto import BodyCipher, Keyring, key_id_of, seal_record
from opsgate.store.tables.audit import audit_log
from opsgate.store.tables.traces import traces
from tests.cli.test_cli import run
from tests.compliance.helpers import bodies_config, new_keys, wait_traces
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream, unused_port
from tests.store.conftest import Backend, backend, empty_backend, make_trace

__all__ = ["backend", "empty_backend"]
pytestmark = pytest.mark.integration


async def test_audit_verify_finds_a_tampered_entry(backend: Backend) -> None:
    engine = make_engine(backend.url)
    try:
        log = AuditLog(engine)
        for i in range(5):
            await log.append("master", "keys.create", f"/admin/v1/keys/k{i}", {"status": 201})
        out = await asyncio.to_thread(run, "audit", "verify", "--database-url", backend.url)
        assert out.returncode == 0, out.stderr
        assert "ok" in out.stdout and "5 entries" in out.stdout
        head = re.search(r"head (5:[0-9a-f]{64})", out.stdout)
        assert head is not None, out.stdout
        async with engine.begin() as conn:  # cut off the newest entry: the links still hold
            await conn.execute(delete(audit_log).where(audit_log.c.seq == 5))
        verify = ("audit", "verify", "--database-url", backend.url)
        out = await asyncio.to_thread(run, *verify)
        assert out.returncode == 0, "without an anchor a deleted tail goes unseen"
        out = await asyncio.to_thread(run, *verify, "--anchor", head.group(1))
        assert out.returncode == 1 and "broken at seq 5" in out.stdout and "cut off" in out.stdout
        out = await asyncio.to_thread(run, *verify, "--anchor", "five")
        assert out.returncode == 2 and "bad --anchor" in out.stderr

        async with engine.begin() as conn:
            stmt = update(audit_log).where(audit_log.c.seq == 3)
            await conn.execute(stmt.values(detail='{"status":403}'))
        out = await asyncio.to_thread(run, "audit", "verify", "--database-url", backend.url)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "broken at seq 3" in out.stdout and "altered" in out.stdout
    finally:
        await dispose_engine(engine)


def test_audit_verify_on_an_unreachable_database_exits_2() -> None:
    url = f"postgresql://nobody@127.0.0.1:{unused_port()}/none"
    out = run("audit", "verify", "--database-url", url)
    assert out.returncode == 2 and "cannot read the audit log" in out.stderr


def test_gdpr_export_and_erase_through_the_gateway(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    gw = gateway(bodies_config(upstreams["alpha"], tmp_path))
    for user in ("eu/cli 1", "eu-other"):
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": user}
        assert httpx.post(f"{gw.url}/chat/completions", json=body, timeout=30).status_code == 200
    wait_traces(gw.base, 2)

    target = tmp_path / "export.json"
    out = run("gdpr", "export", "--user", "eu/cli 1", "--url", gw.base, "-o", str(target))
    assert out.returncode == 0, out.stderr
    exported = json.loads(target.read_text())
    assert [t["end_user"] for t in exported["data"]["traces"]] == ["eu/cli 1"]
    assert "hi" in exported["data"]["traces"][0]["request_body"]["data"]

    out = run("gdpr", "erase", "--user", "eu/cli 1", "--url", gw.base, "--yes")
    assert out.returncode == 0, out.stderr
    assert re.search(r"traces\s*│\s*1\b", out.stdout) and "erased" in out.stdout
    again = json.loads(run("gdpr", "export", "--user", "eu/cli 1", "--url", gw.base).stdout)
    assert again["data"]["traces"] == []
    assert len(wait_traces(gw.base, 1)) == 1, "the other end user's trace stays"

    out = run("gdpr", "erase", "--user", "x", "--url", f"http://127.0.0.1:{unused_port()}", "--yes")
    assert out.returncode == 1 and "cannot reach the gateway" in out.stderr


def test_new_encryption_key() -> None:
    out = run("keys", "new-encryption-key")
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"k[0-9a-f]{8}:[A-Za-z0-9+/]{43}=\n", out.stdout)
    named = run("keys", "new-encryption-key", "--id", "2026-11")
    assert named.stdout.startswith("2026-11:")
    assert Keyring.parse(named.stdout, source="t").current == "2026-11"
    assert run("keys", "new-encryption-key", "--id", "bad id!").returncode == 2


async def test_rotate_encryption(backend: Backend) -> None:
    old_keys = new_keys("k-old")
    old = BodyCipher(Keyring.parse(old_keys, source="t"))
    engine = make_engine(backend.url)
    try:
        store = SqlTraceStore(engine)
        await store.write_batch(
            [seal_record(old, make_trace(i, request_body=b"prompt")) for i in range(3)]
        )
        rotated = f"{new_keys('k-new')},{old_keys}"
        env = {"OPSGATE_ENCRYPTION_KEYS": rotated}
        args = ("keys", "rotate-encryption", "--database-url", backend.url, "--batch", "2")
        out = await asyncio.to_thread(run, *args, env=env)
        assert out.returncode == 0, out.stderr
        assert "key k-new: 3 bodies re-encrypted" in out.stdout
        async with engine.connect() as conn:
            bodies = (await conn.execute(select(traces.c.request_body))).scalars().all()
        assert {key_id_of(bytes(b)) for b in bodies} == {"k-new"}

        env = {"OPSGATE_ENCRYPTION_KEYS": new_keys("k-newer")}  # k-new removed: rows fail
        out = await asyncio.to_thread(run, *args, env=env)
        assert out.returncode == 1
        assert "key 'k-new', which is not configured" in out.stderr
        assert "3 bodies could not be opened" in out.stderr
        out = await asyncio.to_thread(run, *args, env={"OPSGATE_ENCRYPTION_KEYS": "nope"})
        assert out.returncode == 2 and "encryption keys unusable" in out.stderr
    finally:
        await dispose_engine(engine)
