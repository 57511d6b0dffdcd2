"""v0002_access: creates the access tables as access/schema.py describes them, on both databases,
and downgrades cleanly back to v0001_traces."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection

from opsgate.store import dispose_engine, make_engine
from opsgate.store.migrate import VERSION_TABLE, alembic_config, current, upgrade
from opsgate.store.tables import access as access_schema
from opsgate.store.tables.traces import metadata

ACCESS_TABLES = {"teams", "users", "api_keys", "access_version"}


def _access_diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
    )
    diffs = []
    for diff in compare_metadata(context, metadata):
        flat = diff if isinstance(diff, tuple) else diff[0]
        text = repr(flat)
        if any(f"'{name}'" in text or f"<{name}>" in text for name in ACCESS_TABLES):
            diffs.append(flat)
    return diffs


async def test_upgrade_creates_access_tables_matching_the_schema(database_url: str) -> None:
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert tables >= ACCESS_TABLES
            assert await conn.run_sync(_access_diff) == []
            version = await conn.scalar(select(access_schema.access_version.c.version))
            assert version == 0, "the counter row is seeded"
    finally:
        await dispose_engine(engine)


async def test_downgrade_to_traces_drops_only_access_tables(database_url: str) -> None:
    await upgrade(database_url)

    def down(conn: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "v0001_traces")

    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(down)
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert not tables & ACCESS_TABLES and "traces" in tables
    finally:
        await dispose_engine(engine)
    assert await current(database_url) == "v0001_traces"
