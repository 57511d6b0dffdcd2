"""An in-memory `TraceStore` with the real one's semantics, for tests of the other parts.

Like httpx's `MockTransport`: a first-class backend, not a mock. It is idempotent, keeps the same
usage buckets (so `usage` answers as the SQL store does), and can be switched to fail the way a
database does: `down` makes every call raise `StoreUnavailableError`; `reject` names records the
"database" refuses with `RecordRejectedError`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from opsgate.store.errors import RecordRejectedError, StoreUnavailableError
from opsgate.store.queries import TracePage, TraceQuery, matches, page, summary
from opsgate.store.usage import UsageQuery, UsageRow
from opsgate.store.usage_buckets import (
    Totals,
    UsageKey,
    add_record,
    empty_totals,
    rollup,
    usage_key,
)
from opsgate.trace import TraceRecord


class MemoryTraceStore:
    """Traces in a dict; copies go in and out so callers cannot mutate what is "stored"."""

    def __init__(self, *, reject: Callable[[TraceRecord], bool] | None = None) -> None:
        self.traces: dict[str, TraceRecord] = {}
        self.buckets: dict[UsageKey, Totals] = {}
        self.batches: list[list[str]] = []
        """The trace ids of each successful `write_batch`, newly stored ones only."""
        self.down = False
        self.reject = reject

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailableError("memory store is down")

    async def write_batch(self, records: list[TraceRecord]) -> None:
        self._check()
        if self.reject is not None and any(self.reject(r) for r in records):
            raise RecordRejectedError("memory store rejected a record")
        stored: list[str] = []
        for record in records:
            if record.trace_id in self.traces:
                continue
            self.traces[record.trace_id] = copy.deepcopy(record)
            add_record(self.buckets.setdefault(usage_key(record), empty_totals()), record)
            stored.append(record.trace_id)
        self.batches.append(stored)

    async def get(self, trace_id: str) -> TraceRecord | None:
        self._check()
        record = self.traces.get(trace_id)
        return copy.deepcopy(record) if record is not None else None

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        self._check()
        return rollup(dict(sorted(self.buckets.items())), query)

    async def list_traces(self, query: TraceQuery) -> TracePage:
        self._check()
        found = [r for r in self.traces.values() if matches(r, query)]
        found.sort(key=lambda r: (r.started_at, r.trace_id), reverse=True)
        return page([summary(r) for r in found[: query.limit + 1]], query)

    async def aclose(self) -> None:
        """Nothing to release."""
