"""The trace store interface. Backends: `SqlTraceStore` (SQLite, PostgreSQL), `SqliteThreadStore`
(a SQLite file written from a thread of its own) and `MemoryTraceStore`; `store.build` chooses.

`TraceReader` is the read side that the admin API, the dashboard and budget seeding use (the
gateway exposes it as `Gateway.traces`); only the background writer sees a `TraceStore`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from opsgate.store.queries import TracePage, TraceQuery
from opsgate.store.usage import UsageQuery, UsageRow
from opsgate.trace import TraceRecord


class TraceReader(Protocol):
    """Reads of stored traces. Each raises `StoreUnavailableError` when the database cannot
    be reached."""

    async def get(self, trace_id: str) -> TraceRecord | None:
        """One trace with its spans, or None."""
        ...

    async def list_traces(self, query: TraceQuery) -> TracePage:
        """Trace summaries (no bodies, no spans) matching `query`, newest first, one page."""
        ...

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        """Roll the per-minute usage buckets up, ordered by bucket then group."""
        ...


@runtime_checkable
class TraceStore(TraceReader, Protocol):
    """Where traces are kept. Only the background writer writes; anything may read."""

    async def write_batch(self, records: list[TraceRecord]) -> None:
        """Store traces with their spans and add them to the usage buckets, all or nothing.

        Idempotent: a trace_id already stored is skipped and not counted again, so a batch may
        be replayed after a failure whose outcome is unknown. Raises `StoreUnavailableError`
        when the database cannot be reached (try later) and `RecordRejectedError` when it
        refuses the data (retrying the same batch will not help).
        """
        ...

    async def aclose(self) -> None:
        """Release what the store itself opened (not the engine it was given); call once the
        writer has drained."""
        ...
