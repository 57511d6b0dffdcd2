"""Alembic environment: runs on a connection handed over by `opsgate.store.migrate`.

`upgrade(url)` opens the async engine itself and passes a sync-facing connection in
`config.attributes["connection"]`; the alembic CLI path (no connection) opens one from the
`sqlalchemy.url` option the same way.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

# Every part's tables live on the one shared `metadata`; importing them registers them, so
# schema comparisons see the whole database whatever imported this module.
import opsgate.store.tables.access
import opsgate.store.tables.alerts
import opsgate.store.tables.audit
import opsgate.store.tables.datasets
import opsgate.store.tables.drift
import opsgate.store.tables.evals
import opsgate.store.tables.feedback
import opsgate.store.tables.promotions
import opsgate.store.tables.prompts
import opsgate.store.tables.rag
import opsgate.store.tables.review
import opsgate.store.tables.tuning  # noqa: F401
from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.migrate import VERSION_TABLE
from opsgate.store.tables.traces import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await dispose_engine(engine)


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url for migrations")
    asyncio.run(_run_from_url(url))


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
main()
