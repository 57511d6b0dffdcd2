"""Where rows come from: traces picked by filters or by a review queue, turned into rows.

Picking is one indexed query per filter that reads ids only; rows are then built `CHUNK` traces
at a time: the stored bodies are read and opened, joined with the traces' scores (the one score
store's `for_traces`), and sealed again under each row's own id, in a worker thread so the event
loop keeps serving. A trace stored without bodies cannot become a row; it is counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.errors import NotFoundError
from opsgate.feedback.datasets.model import NewRow, new_id
from opsgate.feedback.datasets.rows import RowContent, assistant, from_bodies, seal
from opsgate.feedback.scores import Score, ScoreStore
from opsgate.feedback.selection import Compiled, TraceFilter
from opsgate.store.crypto import BodyCipher, DecryptionError, open_body
from opsgate.store.tables.review import review_items
from opsgate.store.tables.traces import traces

CHUNK = 500
MAX_ROWS = 1_000_000
"""The most traces one change may take (a filter's own `limit` may lower it)."""

_ROW_COLUMNS = (
    traces.c.trace_id,
    traces.c.started_at,
    traces.c.model_requested,
    traces.c.end_user,
    traces.c.metadata,
    traces.c.request_body,
    traces.c.response_body,
)


@dataclass(slots=True)
class Picked:
    """Trace ids a change takes, in order, and how many matched without stored bodies."""

    trace_ids: list[str] = field(default_factory=list)
    without_bodies: int = 0
    matched: int = 0

    def add(self, trace_id: str, has_body: bool, seen: set[str]) -> None:
        if trace_id in seen:
            return
        seen.add(trace_id)
        self.matched += 1
        if has_body:
            self.trace_ids.append(trace_id)
        else:
            self.without_bodies += 1


@dataclass(slots=True)
class Built:
    rows: list[NewRow] = field(default_factory=list)
    not_chat: int = 0
    undecryptable: int = 0


async def pick_traces(
    engine: AsyncEngine, filters: Sequence[TraceFilter], limit: int, now: float
) -> Picked:
    """The traces matching any of `filters` (oldest first, each once), up to `limit`."""
    picked = Picked()
    seen: set[str] = set()
    dialect = engine.dialect.name
    async with engine.connect() as conn:
        for flt in filters:
            compiled = Compiled(flt, dialect, now)
            columns: list[Any] = [
                traces.c.trace_id,
                traces.c.request_body.is_not(None).label("has_body"),
                *compiled.columns,
            ]
            if compiled.needs_verdicts:
                columns.append(traces.c.guard_verdicts)
            stmt = (
                select(*columns)
                .where(*compiled.where)
                .order_by(traces.c.started_at, traces.c.trace_id)
            )
            if not compiled.needs_verdicts:  # else Python may still turn candidates down
                stmt = stmt.limit(limit + 1)
            result = await conn.stream(stmt)
            async for row in result:
                if compiled.accepts(row):
                    picked.add(row.trace_id, bool(row.has_body), seen)
                if picked.matched > limit:
                    break
            await result.close()
    return picked


async def pick_queue(engine: AsyncEngine, queue_id: str, limit: int) -> Picked:
    """The traces a review queue's reviewers finished (labelled), oldest first."""
    i = review_items.c
    stmt = (
        select(i.trace_id, traces.c.request_body.is_not(None).label("has_body"))
        .join(traces, traces.c.trace_id == i.trace_id)
        .where(i.queue_id == queue_id, i.state == "done")
        .order_by(i.started_at, i.trace_id)
        .limit(limit + 1)
    )
    picked = Picked()
    seen: set[str] = set()
    async with engine.connect() as conn:
        for row in await conn.execute(stmt):
            picked.add(row.trace_id, bool(row.has_body), seen)
    return picked


async def build_rows(
    engine: AsyncEngine,
    store: ScoreStore,
    cipher: Callable[[], BodyCipher | None],
    trace_ids: Sequence[str],
) -> Built:
    """Rows for `trace_ids` (at most `CHUNK`): bodies opened, scores joined, sealed again."""
    async with engine.connect() as conn:
        found = (
            await conn.execute(select(*_ROW_COLUMNS).where(traces.c.trace_id.in_(list(trace_ids))))
        ).all()
    by_trace: dict[str, list[Score]] = {}
    for score in await store.for_traces(list(trace_ids)):
        if score.trace_id is not None:
            by_trace.setdefault(score.trace_id, []).append(score)
    order = {trace_id: i for i, trace_id in enumerate(trace_ids)}
    rows = sorted(found, key=lambda row: order[row.trace_id])
    return await asyncio.to_thread(_build, rows, by_trace, cipher(), time.time())


def _build(
    rows: Sequence[Any], scores: Mapping[str, list[Score]], cipher: BodyCipher | None, now: float
) -> Built:
    built = Built()
    for row in rows:
        try:
            content = _content(row, scores.get(row.trace_id, ()), cipher)
        except DecryptionError:
            built.undecryptable += 1
            continue
        if content is None:
            built.not_chat += 1
            continue
        row_id = new_id("dr")
        built.rows.append(
            NewRow(
                id=row_id,
                body=seal(cipher, row_id, content),
                input_hash=content.input_hash(),
                has_output=content.output is not None,
                has_reference=content.reference is not None,
                created_at=now,
                source_trace_id=row.trace_id,
                end_user=row.end_user,
                model=row.model_requested,
                scores=latest_values(scores.get(row.trace_id, ())),
                metadata=dict(row.metadata or {}),
            )
        )
    return built


def _content(row: Any, scores: Sequence[Score], cipher: BodyCipher | None) -> RowContent | None:
    request = open_body(cipher, bytes(row.request_body), row.trace_id, "request_body")
    response = None
    if row.response_body is not None:
        response = open_body(cipher, bytes(row.response_body), row.trace_id, "response_body")
    content = from_bodies(request, response)
    if content is None:
        return None
    return replace(content, reference=latest_correction(scores))


def latest_values(scores: Sequence[Score]) -> dict[str, Any]:
    """{metric: value} from the newest score of each metric (scores come oldest first)."""
    values: dict[str, Any] = {}
    for score in scores:
        value = score.typed_value
        if value is not None and score.type != "comment":
            values[score.metric] = value
    return values


def latest_correction(scores: Sequence[Score]) -> dict[str, Any] | None:
    correction = None
    for score in scores:
        if score.correction is not None:
            correction = assistant(score.correction)
    return correction


async def pick_ids(engine: AsyncEngine, trace_ids: Sequence[str], team_id: str | None) -> Picked:
    """Traces named by id (within `team_id` when given); 404 naming the first one not found."""
    found: dict[str, bool] = {}
    async with engine.connect() as conn:
        for start in range(0, len(trace_ids), CHUNK):
            chunk = list(trace_ids[start : start + CHUNK])
            stmt = select(traces.c.trace_id, traces.c.request_body.is_not(None)).where(
                traces.c.trace_id.in_(chunk)
            )
            if team_id is not None:
                stmt = stmt.where(traces.c.team_id == team_id)
            found.update((row[0], bool(row[1])) for row in await conn.execute(stmt))
    missing = next((t for t in trace_ids if t not in found), None)
    if missing is not None:
        raise NotFoundError(
            f"no trace with id {missing!r}", code="trace_not_found", param="trace_ids"
        )
    picked = Picked()
    seen: set[str] = set()
    for trace_id in trace_ids:
        picked.add(trace_id, found[trace_id], seen)
    return picked


def merge(parts: Sequence[Picked]) -> Picked:
    """One pick from several, each trace once, in the order first seen."""
    merged = Picked()
    seen: set[str] = set()
    for part in parts:
        merged.without_bodies += part.without_bodies
        for trace_id in part.trace_ids:
            if trace_id not in seen:
                seen.add(trace_id)
                merged.trace_ids.append(trace_id)
        merged.matched += part.matched
    return merged
