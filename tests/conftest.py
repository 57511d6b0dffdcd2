"""Shared fixtures: real fake-upstream servers and a way to run the real gateway against them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.redisdb import redis_prefix_sync  # noqa: F401 (the `redis_prefix` fixture)
from tests.fixtures.upstream import FakeUpstream

# pytest-xdist's workers get COLUMNS=80; the CLI's module-level rich consoles would freeze that
# width when first imported, and tests that pass their own COLUMNS would then see 80.
os.environ.pop("COLUMNS", None)


@pytest.fixture(scope="session")
def _upstreams() -> Iterator[dict[str, FakeUpstream]]:
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(FakeUpstream(name)) for name in ("alpha", "beta", "gamma")}


@pytest.fixture
def upstreams(_upstreams: dict[str, FakeUpstream]) -> dict[str, FakeUpstream]:
    """Three fake upstreams (`alpha`, `beta`, `gamma`), reset before each test."""
    for s in _upstreams.values():
        s.reset()
    return _upstreams


GatewayFactory = Callable[[dict[str, Any]], GatewayServer]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for this test."""
    return f"sqlite:///{tmp_path}/opsgate.db"


@pytest.fixture
def gateway(db_url: str) -> Iterator[GatewayFactory]:
    """`gateway(config_dict)` starts a real gateway on a loopback port; stopped after the test.

    Its database is this test's own SQLite file unless `env` names another.
    """
    started: list[GatewayServer] = []

    def start(data: dict[str, Any], env: dict[str, str] | None = None) -> GatewayServer:
        server = GatewayServer(make_config(data, {"OPSGATE_DATABASE_URL": db_url, **(env or {})}))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
