"""The database's personal data: traces (with spans and decrypted bodies), every other table
with an `end_user` column (usage buckets today, whatever a later part adds), budget alerts; and
the erasure tombstone that keeps late traces from bringing them back.

Erasure deletes in batches, one short transaction each, so it never holds a lock on the traces
table for long while the writer keeps inserting.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.compliance.bodies import open_bodies
from opsgate.store.crypto import BodyCipher
from opsgate.store.erasures import erasure_time, record_erasure
from opsgate.store.tables.alerts import alert_events
from opsgate.store.tables.traces import metadata, spans, traces

BATCH = 500


def _jsonable(row: Mapping[Any, Any]) -> dict[str, Any]:
    """Plain keys, and bytes as base64."""
    return {
        str(k): base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in row.items()
    }


class Tombstone:
    """The erasure's tombstone (store/erasures.py): written before anything is deleted, so
    traces of the end user still on their way (another replica's queue or journal, a batch
    being written now) are dropped when they arrive instead of bringing the data back.

    The receipt does not count it (it counts what was removed). The export shows when the end
    user was last erased, if ever: the table keeps only that, under their pseudonym.
    """

    name = "erasures"

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock

    async def export(self, end_user: str) -> list[dict[str, float]]:
        at = await erasure_time(self._engine, end_user)
        return [] if at is None else [{"erased_at": at}]

    async def erase(self, end_user: str) -> dict[str, int]:
        await record_erasure(self._engine, end_user, self._clock)
        return {}


class TraceData:
    """Traces of an end user, their spans, and their bodies (decrypted in exports)."""

    name = "traces"

    def __init__(self, engine: AsyncEngine, cipher: Callable[[], BodyCipher | None]) -> None:
        self._engine = engine
        self._cipher = cipher

    async def export(self, end_user: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = ""
        async with self._engine.connect() as conn:
            while True:
                stmt = (
                    select(traces)
                    .where(traces.c.end_user == end_user, traces.c.trace_id > after)
                    .order_by(traces.c.trace_id)
                    .limit(BATCH)
                )
                # Mutable copies; `_jsonable` makes their keys plain `str` before they leave.
                rows = [dict(r._mapping) for r in await conn.execute(stmt)]
                if not rows:
                    return out
                ids = [r["trace_id"] for r in rows]
                found = select(spans).where(spans.c.trace_id.in_(ids)).order_by(spans.c.position)
                by_trace: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
                for span in await conn.execute(found):
                    by_trace[span.trace_id].append(_jsonable(span._mapping))
                cipher = self._cipher()
                for row in rows:
                    open_bodies(cipher, row)
                    out.append({**_jsonable(row), "spans": by_trace[row["trace_id"]]})
                after = ids[-1]

    async def erase(self, end_user: str) -> dict[str, int]:
        counts = {"traces": 0, "spans": 0}
        while True:
            async with self._engine.begin() as conn:
                picked = select(traces.c.trace_id).where(traces.c.end_user == end_user)
                ids = [r[0] for r in await conn.execute(picked.limit(BATCH))]
                if not ids:
                    return counts
                gone = await conn.execute(delete(spans).where(spans.c.trace_id.in_(ids)))
                counts["spans"] += gone.rowcount
                gone = await conn.execute(delete(traces).where(traces.c.trace_id.in_(ids)))
                counts["traces"] += gone.rowcount


class EndUserTables:
    """Every table with an `end_user` column other than those a holder of their own covers.

    Tables are looked up at each call, so a part that adds such a table is covered at once.
    """

    name = "tables"

    def __init__(self, engine: AsyncEngine, skip: frozenset[str] = frozenset({"traces"})) -> None:
        self._engine = engine
        self.skip = skip

    def tables(self) -> list[Table]:
        return [t for t in metadata.sorted_tables if "end_user" in t.c and t.name not in self.skip]

    async def export(self, end_user: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        async with self._engine.connect() as conn:
            for table in self.tables():
                rows = await conn.execute(select(table).where(table.c.end_user == end_user))
                out[str(table.name)] = [_jsonable(r._mapping) for r in rows]
        return out

    async def erase(self, end_user: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        async with self._engine.begin() as conn:
            for table in self.tables():
                gone = await conn.execute(delete(table).where(table.c.end_user == end_user))
                counts[str(table.name)] = gone.rowcount
        return counts


class BudgetAlerts:
    """Alert events about one end user's budget (their id is in the labels and the message)."""

    name = "alert_events"

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @staticmethod
    def _about(end_user: str) -> Any:
        labels = alert_events.c.labels
        return (labels["scope"].as_string() == "user") & (labels["id"].as_string() == end_user)

    async def export(self, end_user: str) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(alert_events).where(self._about(end_user)))
            return [_jsonable(r._mapping) for r in rows]

    async def erase(self, end_user: str) -> dict[str, int]:
        async with self._engine.begin() as conn:
            gone = await conn.execute(delete(alert_events).where(self._about(end_user)))
        return {"alert_events": gone.rowcount}
