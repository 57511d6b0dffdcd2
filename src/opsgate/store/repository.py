"""The trace store interface. Backends: `SqlTraceStore` (SQLite, PostgreSQL), `MemoryTraceStore`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from opsgate.store.queries import TracePage, TraceQuery
from opsgate.store.usage import UsageQuery, UsageRow
from opsgate.trace import TraceRecord


@runtime_checkable
class TraceStore(Protocol):
    """Where traces are kept. Only the background writer writes; anything may read."""

    async def write_batch(self, records: list[TraceRecord]) -> None:
        """Store traces with their spans and add them to the usage buckets, all or nothing.

        Idempotent: a trace_id already stored is skipped and not counted again, so a batch may
        be replayed after a failure whose outcome is unknown. Raises `StoreUnavailableError`
        when the database cannot be reached (try later) and `RecordRejectedError` when it
        refuses the data (retrying the same batch will not help).
        """
        ...

    async def get(self, trace_id: str) -> TraceRecord | None:
        """One trace with its spans, or None."""
        ...

    async def list_traces(self, query: TraceQuery) -> TracePage:
        """Trace summaries (no bodies, no spans) matching `query`, newest first, one page."""
        ...

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        """Roll the per-minute usage buckets up, ordered by bucket then group."""
        ...
