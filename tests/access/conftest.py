"""Access fixtures: a database per test (SQLite file, or a fresh PostgreSQL database), a private
Redis key prefix per test (deleted afterwards, never FLUSHALL), and real gateways on top."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsgate.config import load_config
from tests.access.helpers import MASTER, Client, config_data
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.redisdb import REDIS_URL
from tests.fixtures.upstream import FakeUpstream
from tests.store.conftest import _pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (the gateway migrates it on start)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'opsgate.db'}"
        return
    async with _pg_database() as backend:
        yield backend.url


GatewayStarter = Callable[..., Client]
TEST_ENCRYPTION_KEY = "test-key:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="  # 32 x 0x01


@pytest.fixture
def access_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstreams: dict[str, FakeUpstream]
) -> Iterator[GatewayStarter]:
    """`access_gateway(db_url, master=..., redis_prefix=...)` → a `Client` (as the master key)
    for a real gateway started from a config *file*, so config reload works too."""
    started: list[GatewayServer] = []

    def start(
        db_url: str,
        *,
        master: str | None = MASTER,
        redis_prefix: str | None = None,
        **traces: Any,
    ) -> Client:
        path = tmp_path / f"opsgate-{len(started)}.yaml"
        traces.setdefault("journal_path", str(tmp_path / "journal.jsonl"))  # not ./ (shared)
        path.write_text(yaml.safe_dump(config_data(upstreams["alpha"], **traces)))
        monkeypatch.setenv("OPSGATE_DATABASE_URL", db_url)
        for name, value in (
            ("OPSGATE_MASTER_KEY", master),
            ("OPSGATE_REDIS_URL", REDIS_URL if redis_prefix else None),
            ("OPSGATE_REDIS_PREFIX", redis_prefix),
        ):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        if not os.environ.get("OPSGATE_ENCRYPTION_KEYS"):  # PostgreSQL needs one to keep bodies
            monkeypatch.setenv("OPSGATE_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY)
        server = GatewayServer(load_config(path), config_path=path)
        server.start()
        started.append(server)
        return Client(server.base, master, server)

    yield start
    for server in started:
        server.stop()
