"""Score writes to a SQLite file on a thread of their own (reads stay on `SqlScoreStore`).

The reason is the trace writer's (store/offload.py): through aiosqlite a batch is a dozen
hand-offs between the event loop and the driver's thread, each waiting behind every ready
request callback, so a gateway busy answering `POST /v1/feedback` starved its own score writer
(~2,300 scores/s, and the queue filled). Here the rows are made on the loop and the whole batch
is one call on a dedicated thread with the plain `sqlite3` driver: `BEGIN IMMEDIATE` (SQLite's
write lock from the start), multi-row `INSERT ... ON CONFLICT DO NOTHING` without `RETURNING`
(one step per statement; `RETURNING` steps, and retakes the GIL, once per row), then the
erasure tombstones of the batch's end users (zero rows, normally) and `COMMIT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.feedback.scores import Score
from opsgate.feedback.scores_sql import NEW_ONLY, SqlScoreStore, erased_ids, score_values, unique
from opsgate.store import erasures
from opsgate.store.db import is_sqlite_file, sqlite_pragmas
from opsgate.store.dialect import Statement, dialect_of
from opsgate.store.errors import RecordRejectedError, StoreUnavailableError
from opsgate.store.tables.feedback import scores as table

_REFUSED = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError)


class SqliteScoreStore(SqlScoreStore):
    """`SqlScoreStore` whose `write_batch` runs on a dedicated thread (a SQLite file only)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        if not is_sqlite_file(engine.url):
            raise ValueError("SqliteScoreStore needs a SQLite file")
        self._path = Path(str(engine.url.database))
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsgate-scores")
        self._conn: sqlite3.Connection | None = None
        """Opened, used and closed on the writer thread only."""
        self._closed = False

    async def write_batch(self, batch: Sequence[Score]) -> None:
        if self._closed:
            raise StoreUnavailableError("the score store is closed")
        if not batch:
            return
        scores = unique(batch)
        rows = [score_values(s) for s in scores]
        statements = dialect_of("sqlite").insert_rows(table, rows, NEW_ONLY)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._write_locked, scores, statements)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            sqlite_pragmas(conn)
            self._conn = conn
        return self._conn

    def _write_locked(self, scores: list[Score], statements: list[Statement]) -> None:
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements:
                    conn.execute(statement.sql, statement.params)
                _drop_erased(conn, scores)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except (*_REFUSED, TypeError, ValueError, OverflowError) as exc:
            raise RecordRejectedError(f"{type(exc).__name__}: {exc}") from exc
        except (sqlite3.Error, OSError) as exc:
            self._reset()
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    async def aclose(self) -> None:
        """End the thread after its current batch; call once the writer has stopped."""
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._reset)
        await asyncio.to_thread(self._thread.shutdown, wait=True)


def _drop_erased(conn: sqlite3.Connection, scores: list[Score]) -> None:
    """Under the write lock: delete the batch's scores of end users erased after the scored
    trace began (the tombstone lookup finds nothing, normally)."""
    users = {erasures.subject(s.end_user): s.end_user for s in scores if s.end_user}
    if not users:
        return
    rows = [
        row for s in erasures.lookup("sqlite", list(users)) for row in conn.execute(s.sql, s.params)
    ]
    gone = erased_ids(scores, erasures.erased_at(users, rows)) if rows else []
    for statement in dialect_of("sqlite").matching("DELETE FROM scores", "score_id", gone):
        conn.execute(statement.sql, statement.params)


def score_store(engine: AsyncEngine) -> SqlScoreStore:
    """The store for `engine`'s database: writes from a thread of their own for a SQLite file,
    from the loop for PostgreSQL (and an in-memory SQLite database a second connection could not
    see)."""
    return SqliteScoreStore(engine) if is_sqlite_file(engine.url) else SqlScoreStore(engine)
