"""The connection helpers the parts' SQL stores share.

`reading` opens a connection and `writing` a transaction; both turn a database that is down or
out of reach (`DOWN`) into the part's own "unavailable" error (a 503), so a store's methods
only say what they read and write. `changes_version` and `bump_changes` read and advance a
change counter: a one-row table (`id = 1`, `version`) that replicas poll to know when to drop
what they cached, bumped in the same transaction as the change it announces.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import Table, Update, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

DOWN = (OSError, TimeoutError, SQLAlchemyError)
"""What a database that is down, restarting or out of reach raises."""

Unavailable = Callable[[], Exception]
"""Makes the part's own "store unavailable" error."""


@contextlib.asynccontextmanager
async def reading(engine: AsyncEngine, unavailable: Unavailable) -> AsyncIterator[AsyncConnection]:
    """A connection for reads; `unavailable()` is raised (from the cause) when the database
    fails."""
    try:
        async with engine.connect() as conn:
            yield conn
    except DOWN as exc:
        raise unavailable() from exc


@contextlib.asynccontextmanager
async def writing(
    engine: AsyncEngine,
    unavailable: Unavailable,
    *,
    passing: tuple[type[Exception], ...] = (),
) -> AsyncIterator[AsyncConnection]:
    """A transaction, committed when the block ends; `unavailable()` is raised when the
    database fails, except for the errors in `passing` (an `IntegrityError` the caller turns
    into a conflict), which go through unchanged."""
    try:
        async with engine.begin() as conn:
            yield conn
    except passing:
        raise
    except DOWN as exc:
        raise unavailable() from exc


async def changes_version(conn: AsyncConnection, counter: Table) -> int:
    """The change counter's value (0 before the first change)."""
    value: Any = await conn.scalar(select(counter.c.version).where(counter.c.id == 1))
    return int(value or 0)


def bump_changes(counter: Table) -> Update:
    """The statement that advances the change counter by one."""
    return update(counter).where(counter.c.id == 1).values(version=counter.c.version + 1)
