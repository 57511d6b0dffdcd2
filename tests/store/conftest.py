"""Store fixtures: every test runs on SQLite (a temp file) and on the real PostgreSQL.

Each PostgreSQL test gets its own freshly created database (`opsgate_test_<random>`), created
through the `test` database and dropped afterwards; no other database is touched. When
PostgreSQL is unreachable its tests skip, unless CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from opsgate.store import SpanRecord, SqlTraceStore, TraceRecord, dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from tests.store.proxy import TcpProxy

PG_HOST = os.environ.get("OPSGATE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("OPSGATE_TEST_PG_PORT", "5432"))
PG_USERS = ("postgres", "root")


async def _pg_admin() -> tuple[asyncpg.Connection, str]:
    errors = []
    for user in PG_USERS:
        try:
            conn = await asyncpg.connect(
                host=PG_HOST, port=PG_PORT, user=user, database="test", timeout=5
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            errors.append(f"{user}: {exc}")
            continue
        return conn, user
    reason = f"PostgreSQL at {PG_HOST}:{PG_PORT} (database `test`) unreachable: {errors}"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Backend:
    """A migrated, empty database for one test."""

    name: str
    url: str
    pg_user: str | None = None
    pg_database: str | None = None

    def url_via(self, port: int) -> str:
        """The same PostgreSQL database, reached through another port (a proxy)."""
        assert self.name == "postgresql"
        return f"postgresql://{self.pg_user}@127.0.0.1:{port}/{self.pg_database}"


@contextlib.asynccontextmanager
async def _pg_database() -> AsyncIterator[Backend]:
    admin, user = await _pg_admin()
    name = f"opsgate_test_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
        yield Backend("postgresql", url, user, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A brand-new, unmigrated database."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'opsgate.db'}")
        return
    async with _pg_database() as backend:
        yield backend


@pytest.fixture
async def pg_backend() -> AsyncIterator[Backend]:
    """A migrated PostgreSQL database, for tests that only make sense there (cut networks)."""
    async with _pg_database() as backend:
        await upgrade(backend.url)
        yield backend


@pytest.fixture
async def backend(empty_backend: Backend) -> Backend:
    """A database at the newest schema."""
    await upgrade(empty_backend.url)
    return empty_backend


@pytest.fixture
async def sql_store(backend: Backend) -> AsyncIterator[SqlTraceStore]:
    engine = make_engine(backend.url)
    try:
        yield SqlTraceStore(engine)
    finally:
        await dispose_engine(engine)


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    """A cuttable TCP path to the real PostgreSQL."""
    p = TcpProxy(PG_HOST, PG_PORT)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


def dead_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def make_trace(i: int, **fields: object) -> TraceRecord:
    """A realistic trace; `i` varies model, key, minute, latency and cost deterministically."""
    trace_id = f"tr-{i:06d}"
    base = 1_700_000_000.0 + (i % 7) * 61.5 + (i % 3) * 3600
    values: dict[str, object] = {
        "trace_id": trace_id,
        "started_at": base,
        "duration_ms": 5.0 + (i * 37) % 4000 + 0.25,
        "endpoint": "chat",
        "model_requested": ("gpt-4o-mini", "claude-3-haiku", "chat-default")[i % 3],
        "status": "error" if i % 11 == 0 else "ok",
        "http_status": 502 if i % 11 == 0 else 200,
        "ttft_ms": 3.0 + i % 50 if i % 2 else None,
        "deployment": ("openai-1", "anthropic-1", None)[i % 3],
        "provider": "openai",
        "attempts": 1 + i % 2,
        "stream": bool(i % 2),
        "key_id": f"key-{i % 4}",
        "team_id": f"team-{i % 2}" if i % 5 else None,
        "end_user": f"user-{i % 6}",
        "metadata": {"env": "test", "n": str(i)},
        "prompt_tokens": 10 + i % 100,
        "completion_tokens": 20 + i % 50,
        "cached_tokens": i % 7,
        "cost_micros": 1000 + i * 13,
        "cache": ("miss", "hit-exact", "hit-semantic", None)[i % 4],
        "spans": [
            SpanRecord(f"{trace_id}-s0", trace_id, "cache.lookup", base, 0.5),
            SpanRecord(
                f"{trace_id}-s1",
                trace_id,
                "upstream",
                base + 0.001,
                4.0,
                parent_id=f"{trace_id}-s0",
                attributes={"attempt": 1, "ok": True},
            ),
        ],
    }
    values.update(fields)
    return TraceRecord(**values)  # type: ignore[arg-type]


async def eventually(check: Callable[[], object], *, within: float = 30.0) -> None:
    """Poll until `check()` is truthy; `within` is a hang guard, not a timing assertion."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {within}s: {check}")
        await asyncio.sleep(0.02)
