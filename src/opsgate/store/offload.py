"""SQLite trace writes on a thread of their own, so a busy gateway cannot starve its writer.

Through aiosqlite a batch write is a dozen hand-offs between the event loop and the driver's
thread, and under load each hand-off waits for the GIL and behind every ready request callback:
the writer fell to ~1,400 traces/s and spilled to the journal while the database had time to
spare. Here the statements are made on the loop and the whole batch runs as one call on a
dedicated thread with the plain `sqlite3` driver, which releases the GIL while SQLite works; the
event loop awaits one future per batch. Reads (admin queries, dashboards) stay on the async
engine. The statements are the same ones `SqlTraceStore` runs (`store.batch`).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from opsgate.store.batch import Statement, execute, follow_ups, trace_inserts
from opsgate.store.db import make_sync_sqlite_engine
from opsgate.store.errors import StoreUnavailableError
from opsgate.store.queries import TracePage, TraceQuery
from opsgate.store.records import TraceRecord
from opsgate.store.repository import TraceStore
from opsgate.store.sql import CAUGHT, dedupe, translate
from opsgate.store.usage import UsageQuery, UsageRow


class SqliteThreadStore:
    """A `TraceStore` for a SQLite file whose `write_batch` runs on a dedicated thread;
    reads are delegated to `reads` (normally a `SqlTraceStore` on the same file)."""

    def __init__(self, url: str, reads: TraceStore) -> None:
        self._engine = make_sync_sqlite_engine(url)
        self._reads = reads
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsgate-sqlite")
        self._closed = False

    def _write(
        self, records: list[TraceRecord], inserts: list[Statement], after: list[Statement]
    ) -> None:
        try:
            with self._engine.begin() as conn:
                new = {row[0] for statement in inserts for row in execute(conn, statement)}
                if len(new) != len(records):  # some were stored before (a replay): rare
                    after = follow_ups("sqlite", [r for r in records if r.trace_id in new])
                for statement in after:
                    execute(conn, statement)
        except CAUGHT as exc:
            raise translate(exc) from exc

    async def write_batch(self, records: list[TraceRecord]) -> None:
        if self._closed:
            raise StoreUnavailableError("the trace store is closed")
        if not records:
            return
        # The rows are made here, on the loop, assuming every trace is new: Python work on the
        # writer thread would hold the GIL in 5 ms slices against the request path.
        records = dedupe(records)
        inserts, after = trace_inserts("sqlite", records), follow_ups("sqlite", records)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._write, records, inserts, after)

    async def get(self, trace_id: str) -> TraceRecord | None:
        return await self._reads.get(trace_id)

    async def list_traces(self, query: TraceQuery) -> TracePage:
        return await self._reads.list_traces(query)

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        return await self._reads.usage(query)

    async def aclose(self) -> None:
        """End the thread after its current batch; call once the writer has drained."""
        self._closed = True
        await asyncio.to_thread(self._thread.shutdown, wait=True)
        self._engine.dispose()
