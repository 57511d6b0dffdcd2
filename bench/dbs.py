"""Throw-away databases for the trace benchmarks: a SQLite file in a temp dir, and a PostgreSQL
database of our own (`opsgate_bench_<random>`) that is dropped afterwards, whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

PG_ADMIN_URLS = (
    "postgresql://root@127.0.0.1:5432/test",
    "postgresql://postgres@127.0.0.1:5432/test",
)
"""Tried in turn (trust auth on loopback); `OPSGATE_BENCH_PG_ADMIN` overrides."""


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    """"sqlite" or "postgresql"."""
    url: str
    """The plain URL opsgate's config takes (`sqlite:///...`, `postgresql://...`)."""


def _admin_urls() -> tuple[str, ...]:
    override = os.environ.get("OPSGATE_BENCH_PG_ADMIN")
    return (override,) if override else PG_ADMIN_URLS


async def _admin() -> tuple[Any, str]:
    """An asyncpg connection to the admin database, and its URL."""
    errors: list[str] = []
    for url in _admin_urls():
        try:
            conn: Any = await asyncpg.connect(url, timeout=5)
            return conn, url
        except (OSError, asyncpg.PostgresError) as exc:
            errors.append(f"{url}: {exc}")
    raise ConnectionError("; ".join(errors))


async def _create() -> tuple[str, str]:
    conn, admin_url = await _admin()
    try:
        name = f"opsgate_bench_{secrets.token_hex(5)}"
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, admin_url.rsplit("/", 1)[0] + "/" + name


async def _drop(name: str) -> None:
    conn, _ = await _admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def pg_available() -> str | None:
    """None when PostgreSQL answers, else why not."""

    async def probe() -> None:
        conn, _ = await _admin()
        await conn.close()

    try:
        asyncio.run(probe())
    except (ConnectionError, OSError) as exc:
        return str(exc)
    return None


@contextlib.contextmanager
def pg_database() -> Iterator[Backend]:
    """A fresh, empty PostgreSQL database; dropped (connections forced off) on exit."""
    name, url = asyncio.run(_create())
    try:
        yield Backend("postgresql", url)
    finally:
        asyncio.run(_drop(name))


@contextlib.contextmanager
def sqlite_database(label: str = "traces") -> Iterator[Backend]:
    """A SQLite file in a temp dir (WAL and journal files land beside it); removed on exit."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{label}-") as tmp:
        yield Backend("sqlite", f"sqlite:///{Path(tmp) / 'opsgate.db'}")


def sqlite_path(backend: Backend) -> Path:
    return Path(backend.url.removeprefix("sqlite:///"))


@contextlib.contextmanager
def backends(with_pg: bool, label: str = "traces") -> Iterator[list[Backend]]:
    """SQLite always, PostgreSQL when asked for."""
    with contextlib.ExitStack() as stack:
        found = [stack.enter_context(sqlite_database(label))]
        if with_pg:
            found.append(stack.enter_context(pg_database()))
        yield found
