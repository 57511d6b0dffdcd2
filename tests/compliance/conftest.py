"""Compliance fixtures: the store's databases, and one database URL per backend for gateways."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.store.conftest import _pg_database, backend, empty_backend, sql_store

__all__ = ["backend", "empty_backend", "pg_url", "sql_store"]


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database (the gateway migrates it on start)."""
    async with _pg_database() as db:
        yield db.url
