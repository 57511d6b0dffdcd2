"""Shared pieces of the compliance tests: a gateway config storing bodies, key material, and
a scan of every column of every table for a string."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from opsgate.store import dispose_engine, make_engine
from tests.api.test_openai_compat import oa
from tests.fixtures.upstream import FakeUpstream


def new_keys(*kids: str) -> str:
    """An OPSGATE_ENCRYPTION_KEYS value with fresh keys (the first is current)."""
    return ",".join(f"{k}:{base64.b64encode(os.urandom(32)).decode()}" for k in kids)


def bodies_config(fake: FakeUpstream, folder: Path, **extra: Any) -> dict[str, Any]:
    """Bodies kept; the journal in the test's own folder (the default for PostgreSQL is the
    working directory, where another test's gateway would replay it into its database)."""
    traces = {
        "flush_interval": 0.05,
        "store_bodies": "full",
        "journal_path": str(folder / "journal.jsonl"),
        **extra.pop("traces", {}),
    }
    return {
        "models": [{"name": "m", "deployments": [oa("a", fake)]}],
        "router": {"retries": 0},
        "traces": traces,
        **extra,
    }


def wait_traces(base: str, count: int, headers: dict[str, str] | None = None, **params: str) -> Any:
    """Poll the admin API until `count` traces match (the writer flushes in the background)."""
    deadline = time.monotonic() + 30
    while True:
        resp = httpx.get(
            f"{base}/admin/v1/traces",
            params={"limit": "500", **params},
            headers=headers or {},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        data = resp.json()["data"]
        if len(data) >= count:
            assert len(data) == count
            return data
        assert time.monotonic() < deadline, f"only {len(data)} of {count} traces arrived"
        time.sleep(0.05)


def _scan(conn: Connection, needle: str) -> dict[str, int]:
    """Rows per `table.column` whose value, cast to text, contains `needle`."""
    found: dict[str, int] = {}
    inspector = inspect(conn)
    for table in inspector.get_table_names():
        for column in inspector.get_columns(table):
            name = column["name"]
            count = conn.execute(
                text(f'SELECT count(*) FROM "{table}" WHERE CAST("{name}" AS TEXT) LIKE :p'),
                {"p": f"%{needle}%"},
            ).scalar_one()
            if count:
                found[f"{table}.{name}"] = int(count)
    return found


async def find_everywhere(url: str, needle: str) -> dict[str, int]:
    """Every column of every table in the database (reflected, not from our metadata)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_scan, needle)
    finally:
        await dispose_engine(engine)
