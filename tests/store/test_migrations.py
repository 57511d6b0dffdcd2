"""Migrations: they apply to an empty database, are repeatable, and match `store/schema.py`."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from opsgate.store import dispose_engine, make_engine
from opsgate.store.migrate import VERSION_TABLE, alembic_config, current, head, upgrade
from opsgate.store.schema import metadata
from tests.store.conftest import Backend

TABLES = {
    "traces",
    "spans",
    "usage_minute",
    "teams",
    "users",
    "api_keys",
    "access_version",
    "alert_events",
    VERSION_TABLE,
}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
    )
    return list(compare_metadata(context, metadata))


async def test_upgrade_empty_database_to_head(empty_backend: Backend) -> None:
    assert await current(empty_backend.url) is None
    await upgrade(empty_backend.url)
    assert await current(empty_backend.url) == head() == "v0003_alerts"
    await upgrade(empty_backend.url)  # every start calls it; the second run is a no-op
    engine = make_engine(empty_backend.url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
    finally:
        await dispose_engine(engine)


async def test_migrations_match_the_schema_module(backend: Backend) -> None:
    engine = make_engine(backend.url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await dispose_engine(engine)


async def test_downgrade_to_base_removes_the_tables(backend: Backend) -> None:
    def downgrade(conn: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "base")

    engine = make_engine(backend.url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == {VERSION_TABLE}
    finally:
        await dispose_engine(engine)
