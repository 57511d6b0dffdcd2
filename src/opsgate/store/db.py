"""Async engines from the one `database_url` setting.

Users write plain URLs (`sqlite:///./opsgate.db`, `postgresql://user@host/db`); the async drivers
are an implementation detail, so the URL is translated here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for another process's lock before failing."""

PG_CONNECT_TIMEOUT_S = 10.0
"""A dead PostgreSQL must fail fast so the writer can journal instead of hanging."""


def async_url(url: str | URL) -> URL:
    """Map a user-facing database URL onto its async driver (`sqlite+aiosqlite`, `+asyncpg`)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite or postgresql"
    )


def is_memory_sqlite(url: str | URL) -> bool:
    """An in-memory SQLite database exists once per engine: it cannot be shared."""
    url = make_url(url)
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine for `url`; the caller owns it and calls `dispose_engine`."""
    target = async_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if target.get_backend_name() == "sqlite":
        if is_memory_sqlite(target):
            # One shared connection, or every checkout would see its own empty database.
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_pre_ping"] = True
        # JIT compiling costs 100+ ms on the rollup queries it deems expensive; they run in
        # tens of ms without it.
        kwargs["connect_args"] = {
            "timeout": PG_CONNECT_TIMEOUT_S,
            "server_settings": {"jit": "off"},
        }
    engine = create_async_engine(target, **kwargs)
    if target.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    return engine


def is_sqlite_file(url: str | URL) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and not is_memory_sqlite(parsed)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    sqlite_pragmas(dbapi_connection)


def sqlite_pragmas(dbapi_connection: Any) -> None:
    """WAL lets readers run beside the writer; foreign keys make ON DELETE CASCADE real."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


async def dispose_engine(engine: AsyncEngine) -> None:
    """Close every pooled connection; call once at shutdown."""
    await engine.dispose()
