"""Feedback fixtures: a migrated database per test (SQLite file and the real PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from opsgate.feedback import SqlScoreStore
from opsgate.store import dispose_engine, make_engine
from tests.store.conftest import Backend, backend, empty_backend  # noqa: F401 (fixtures)


@pytest.fixture
async def score_store(backend: Backend) -> AsyncIterator[SqlScoreStore]:  # noqa: F811
    engine = make_engine(backend.url)
    try:
        yield SqlScoreStore(engine)
    finally:
        await dispose_engine(engine)
