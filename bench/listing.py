"""Timing the trace list (`SqlTraceStore.list_traces`), when the store has one.

It is looked up at run time, so this benchmark runs (and says "skipped") on a store without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.querytiming import Timing, timed
from bench.synthetic import DAY
from opsgate.store import SqlTraceStore

PAGES_DEEP = 20


def _cases(end: float) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("list: newest 50", {}),
        ("list: model = gpt-4o, 50", {"model": "gpt-4o"}),
        ("list: team = team-03, 7 d, 50", {"team_id": "team-03", "since": end - 7 * DAY}),
        ("list: errors, 1 d, 50", {"status": "error", "since": end - DAY}),
        ("list: metadata app = app-3, 50", {"metadata": (("app", "app-3"),)}),
        ("list: duration >= 5 s, 50", {"min_duration_ms": 5000.0}),
    ]


@dataclass(frozen=True, slots=True)
class ListProbe:
    query_type: Callable[..., Any]

    async def _page(self, store: SqlTraceStore, **fields: Any) -> Any:
        list_traces: Callable[[Any], Any] = store.list_traces
        return await list_traces(self.query_type(limit=50, **fields))

    async def time(
        self, store: SqlTraceStore, backend: str, end: float, repeats: int
    ) -> list[Timing]:
        out: list[Timing] = []
        for name, fields in _cases(end):

            async def one(fields: dict[str, Any] = fields) -> int:
                return len((await self._page(store, **fields)).items)

            out.append(await timed(name, backend, repeats, one))
        # Page PAGES_DEEP of the unfiltered list: follow the cursor there, time that page alone.
        cursor = None
        for _ in range(PAGES_DEEP - 1):
            cursor = (await self._page(store, cursor=cursor)).next_cursor

        async def deep() -> int:
            return len((await self._page(store, cursor=cursor)).items)

        out.append(await timed(f"list: page {PAGES_DEEP} by cursor, 50", backend, repeats, deep))
        return out


def list_probe() -> tuple[ListProbe | None, str]:
    """The probe and a note, or None and why the list is skipped."""
    if not hasattr(SqlTraceStore, "list_traces"):
        return None, "`SqlTraceStore.list_traces` does not exist yet: trace list skipped"
    try:
        queries = importlib.import_module("opsgate.store.queries")
    except ImportError as exc:
        return None, f"trace list skipped: {exc}"
    query_type = getattr(queries, "TraceQuery", None)
    if query_type is None:
        return None, "trace list skipped: no `opsgate.store.queries.TraceQuery`"
    return ListProbe(query_type), "trace list timed through `SqlTraceStore.list_traces`"
