"""A prompt sent through a real gateway with `store_bodies: full` is never on disk in plain text:
not in the SQLite file, its WAL, the trace journal, nor in PostgreSQL's stored bytes."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import time
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from opsgate.store import dispose_engine, make_engine
from opsgate.store.crypto import is_sealed
from tests.compliance.helpers import bodies_config, new_keys, wait_traces
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration

PROMPT = "the violet heron sings at midnight over Lake Zirconia"
ANSWER = "obsidian lanterns drift eastward past the quiet harbour"


def _ask(url: str, fake: FakeUpstream) -> str:
    fake.script(Reply(text=ANSWER))
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": PROMPT}], user="eu-secret"
    )
    assert raw.parse().choices[0].message.content == ANSWER
    return raw.headers["x-opsgate-trace-id"]


def _files(folder: Path, prefix: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name.startswith(prefix)}


def _plain(blob: bytes) -> list[str]:
    return [s for s in (PROMPT, ANSWER, "violet heron", "obsidian") if s.encode() in blob]


def test_sqlite_db_wal_and_journal_hold_no_plaintext(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], db_url: str, tmp_path: Path
) -> None:
    fake = upstreams["alpha"]
    journal = tmp_path / "spill" / "traces.jsonl"
    gw = gateway(bodies_config(fake, tmp_path, traces={"journal_path": str(journal)}))
    first = _ask(gw.url, fake)
    wait_traces(gw.base, 1)

    # Lock the database so the next trace cannot be written: it goes to the journal.
    db_file = Path(make_url(db_url).database or "")
    lock = sqlite3.connect(db_file, timeout=0, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        second = _ask(gw.url, fake)
        deadline = time.monotonic() + 60
        while gw.gateway.writer.stats().spilled < 1:
            assert time.monotonic() < deadline, "the trace never reached the journal"
            time.sleep(0.05)
        spilled = _files(journal.parent, journal.name)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert any(second.encode() in blob for blob in spilled.values()), "the journal has the trace"
    wait_traces(gw.base, 2)  # replayed from the journal once the lock is gone

    detail = httpx.get(f"{gw.base}/admin/v1/traces/{second}?include_bodies=true", timeout=30)
    assert detail.status_code == 200, detail.text
    assert PROMPT in detail.json()["request_body"]["data"], "the bodies are stored and readable"
    assert detail.json()["response_body"]["data"] == ANSWER

    on_disk = {**_files(db_file.parent, db_file.name), **_files(journal.parent, journal.name)}
    assert f"{db_file.name}-wal" in on_disk or db_file.name in on_disk
    assert any(first.encode() in blob for blob in on_disk.values()), "the scan sees the traces"
    leaks = {name: _plain(blob) for name, blob in on_disk.items() if _plain(blob)}
    assert not leaks, f"plaintext on disk: {leaks}"
    key_file = db_file.with_name(db_file.name + ".key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, "the generated key is private"


async def _stored_bodies(url: str) -> list[tuple[bytes, bytes, int, int]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT request_body, response_body,"
                    " position(convert_to(:p, 'UTF8') in request_body),"
                    " position(convert_to(:a, 'UTF8') in response_body) FROM traces"
                ),
                {"p": PROMPT, "a": ANSWER},
            )
            return [(bytes(q), bytes(r), int(pq), int(pr)) for q, r, pq, pr in rows]
    finally:
        await dispose_engine(engine)


def test_postgresql_stores_only_ciphertext(
    pg_url: str,  # first: the database outlives the gateway
    gateway: GatewayFactory,
    upstreams: dict[str, FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("OPSGATE_ENCRYPTION_KEYS", new_keys("pg-k1"))
    fake = upstreams["alpha"]
    gw = gateway(bodies_config(fake, tmp_path), {"OPSGATE_DATABASE_URL": pg_url})
    trace_id = _ask(gw.url, fake)
    wait_traces(gw.base, 1)
    rows = asyncio.run(_stored_bodies(pg_url))
    assert len(rows) == 1
    request, response, in_request, in_response = rows[0]
    assert is_sealed(request) and is_sealed(response)
    assert in_request == 0 and in_response == 0 and not _plain(request + response)
    detail = httpx.get(f"{gw.base}/admin/v1/traces/{trace_id}?include_bodies=true", timeout=30)
    assert PROMPT in detail.json()["request_body"]["data"]


def test_postgresql_without_a_key_refuses_to_start_when_bodies_are_kept(
    pg_url: str, gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    from opsgate.config import ConfigError

    with pytest.raises(ConfigError, match="OPSGATE_ENCRYPTION_KEYS"):
        gateway(bodies_config(upstreams["alpha"], tmp_path), {"OPSGATE_DATABASE_URL": pg_url})
