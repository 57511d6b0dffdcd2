"""Prompt fixtures: a migrated database (SQLite file or a fresh PostgreSQL database) with the
registry's service on it and the real audit log; real gateways (`gateway`, and from the access
tests `access_gateway` with a master key and keys of every role) for the API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from opsgate.audit import AuditLog
from opsgate.prompts.service import PromptService
from opsgate.store import dispose_engine, make_engine
from tests.access.conftest import access_gateway, database_url
from tests.store.conftest import Backend, backend, empty_backend

__all__ = ["access_gateway", "backend", "database_url", "empty_backend", "service"]


@pytest.fixture
async def service(backend: Backend) -> AsyncIterator[PromptService]:
    """The registry on a migrated database; no change feed running (one process)."""
    engine = make_engine(backend.url)
    try:
        yield PromptService(engine, audit=AuditLog(engine))
    finally:
        await dispose_engine(engine)
