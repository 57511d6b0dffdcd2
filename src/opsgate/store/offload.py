"""SQLite trace writes on a thread of their own, so a busy gateway cannot starve its writer.

Through aiosqlite a batch write is a dozen hand-offs between the event loop and the driver's
thread, and under load each hand-off waits behind every ready request callback: the writer fell
to ~1,400 traces/s and spilled to the journal while the database had time to spare. Here the
rows are made on the loop and the whole batch runs as one call on a dedicated thread with the
plain `sqlite3` driver, which releases the GIL while SQLite works; the loop awaits one future.

The GIL is why the batch is shaped the way it is. `sqlite3` releases and retakes it around
every `sqlite3_step`, and a thread retaking it from a busy event loop waits up to the switch
interval (5 ms) each time; `executemany` or `RETURNING` steps once per row, so a 1,000-row batch
could wait seconds. Every statement is therefore a multi-row `VALUES` (one step), and instead of
`RETURNING` the batch first asks which of its trace ids are stored already (zero rows, one
step, in the common case) inside `BEGIN IMMEDIATE`, which holds SQLite's write lock from the
start, so no other writer can slip in between the check and the insert. A batch with end users
asks the same way which of them have an erasure tombstone (store/erasures.py; again zero rows,
one step, normally); only when one is found is the batch rebuilt without their earlier traces.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.engine import make_url

from opsgate.store.batch import Statement, existing, follow_ups, insert
from opsgate.store.codec import trace_values
from opsgate.store.db import is_sqlite_file, sqlite_pragmas
from opsgate.store.erasures import erased_at, is_erased, lookup, subjects
from opsgate.store.errors import RecordRejectedError, StoreUnavailableError
from opsgate.store.queries import TracePage, TraceQuery
from opsgate.store.repository import TraceStore
from opsgate.store.sql import dedupe
from opsgate.store.tables.traces import traces
from opsgate.store.usage import UsageQuery, UsageRow
from opsgate.trace import TraceRecord

_REFUSED = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError)
_REFUSED_PYTHON = (TypeError, ValueError, OverflowError)


class SqliteThreadStore:
    """A `TraceStore` for a SQLite file whose `write_batch` runs on a dedicated thread;
    reads are delegated to `reads` (normally a `SqlTraceStore` on the same file)."""

    def __init__(self, url: str, reads: TraceStore) -> None:
        if not is_sqlite_file(url):
            raise ValueError("SqliteThreadStore needs a SQLite file URL")
        self._path = Path(str(make_url(url).database))
        self._reads = reads
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsgate-sqlite")
        self._conn: sqlite3.Connection | None = None
        """Opened, used and closed on the writer thread only."""
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            sqlite_pragmas(conn)
            self._conn = conn
        return self._conn

    def _write(
        self, records: list[TraceRecord], rows: list[Statement], users: dict[str, str]
    ) -> None:
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._write_in(conn, records, rows, users)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except _REFUSED + _REFUSED_PYTHON as exc:
            raise RecordRejectedError(f"{type(exc).__name__}: {exc}") from exc
        except (sqlite3.Error, OSError) as exc:
            self._reset()
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _write_in(
        conn: sqlite3.Connection,
        records: list[TraceRecord],
        rows: list[Statement],
        users: dict[str, str],
    ) -> None:
        ids = [r.trace_id for r in records]
        stored = {row[0] for s in existing(traces, ids) for row in conn.execute(s.sql, s.params)}
        erased: dict[str, float] = {}
        if users:  # under the write lock, so no erasure commits between this and the insert
            found = [
                row for s in lookup("sqlite", list(users)) for row in conn.execute(s.sql, s.params)
            ]
            erased = erased_at(users, found)
        if stored or erased:  # a replay, or erased end users: only what is new and not erased
            kept = [r for r in records if r.trace_id not in stored and not is_erased(r, erased)]
            if len(kept) < len(records):
                rows = _statements(kept)
        for statement in rows:
            conn.execute(statement.sql, statement.params)

    def _reset(self) -> None:
        """Drop the connection after a failure: the next batch opens a fresh one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    async def write_batch(self, records: list[TraceRecord]) -> None:
        if self._closed:
            raise StoreUnavailableError("the trace store is closed")
        if not records:
            return
        # The rows are made here, on the loop, assuming every trace is new: Python work on the
        # writer thread would hold the GIL in 5 ms slices against the request path.
        records = dedupe(records)
        rows = _statements(records)
        users = subjects(records)  # their tombstones are asked for on the thread
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._write, records, rows, users)

    async def get(self, trace_id: str) -> TraceRecord | None:
        return await self._reads.get(trace_id)

    async def list_traces(self, query: TraceQuery) -> TracePage:
        return await self._reads.list_traces(query)

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        return await self._reads.usage(query)

    async def aclose(self) -> None:
        """End the thread after its current batch; call once the writer has drained."""
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._reset)
        await asyncio.to_thread(self._thread.shutdown, wait=True)


def _statements(records: list[TraceRecord]) -> list[Statement]:
    """Every statement of a batch whose traces are all new."""
    return [
        *insert("sqlite", traces, [trace_values(r) for r in records]),
        *follow_ups("sqlite", records),
    ]
