"""Apply the packaged migrations: `await upgrade(settings.database_url)` at start-up.

The Alembic config is built in code from this package's own folder, so an installed wheel needs
no alembic.ini on disk. On PostgreSQL an advisory lock makes replicas that start together take
turns instead of racing to create the same tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.dialect import dialect_of

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x6F707367  # "opsg": any constant shared by every replica
VERSION_TABLE = "opsgate_schema_version"
"""Not `alembic_version`, so a database shared with another alembic-managed app is safe."""


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str | None:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection) -> None:
    lock = dialect_of(connection.dialect.name).transaction_lock(_PG_LOCK_KEY)
    if lock is not None:
        connection.execute(text(lock))
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


async def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest schema; safe to call on every start."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    finally:
        await dispose_engine(engine)


async def current(url: str) -> str | None:
    """The revision the database at `url` is at, or None when it has none."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await dispose_engine(engine)
