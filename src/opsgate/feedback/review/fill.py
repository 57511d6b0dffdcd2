"""Filling a review queue: the traces that match its rule since it last looked.

Two windows, so a fill costs what is new rather than the whole history: traces that began since
the last fill (less `OVERLAP`, for traces the writer stored late), and, when the rule looks at
scores, older traces scored since the last fill (a thumbs-down may come days after the answer).
Candidates pass the rule's exact test and its sample, and go in once (the items' primary key).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.feedback.review.model import QueueInfo
from opsgate.feedback.review.rules import sampled
from opsgate.feedback.review.store import QueueStore
from opsgate.feedback.selection import Compiled, TraceFilter
from opsgate.store.tables.feedback import scores
from opsgate.store.tables.traces import traces

OVERLAP = 120.0
"""Seconds each window reaches back past the last fill (traces and scores written late)."""
MAX_PER_FILL = 100_000
"""Items one fill adds at most; the next fill goes on from there."""


async def fill(engine: AsyncEngine, store: QueueStore, queue: QueueInfo, now: float) -> int:
    """Enqueue what matches `queue`'s rule since its last fill; the number added."""
    flt = queue.filter
    lower = max(queue.since, queue.filled_until - OVERLAP)
    found: dict[str, float] = {}
    newest = await _scan(engine, queue, _window(flt, lower, now), None, found)
    if flt.scores or flt.corrected:
        rescored = scores.c.created_at >= queue.scored_until - OVERLAP
        older = _window(flt, queue.since, min(lower, now))
        await _scan(engine, queue, older, rescored, found)
    added = await store.add_items(queue.id, sorted(found.items(), key=_oldest), now)
    if len(found) < MAX_PER_FILL:
        await store.filled(queue.id, now, now)
    else:  # the next fill goes on from the newest trace this one reached
        await store.filled(queue.id, newest, queue.scored_until)
    return added


def _window(flt: TraceFilter, since: float, until: float) -> TraceFilter:
    """The rule's filter cut to [since, until) (the rule's own `until` still applies)."""
    return flt.model_copy(update={"since": since, "until": until})


async def _scan(
    engine: AsyncEngine,
    queue: QueueInfo,
    flt: TraceFilter,
    rescored: Any,
    found: dict[str, float],
) -> float:
    """Add matching, sampled traces to `found`; the start time of the newest one seen."""
    compiled = Compiled(flt, engine.dialect.name, 0.0)
    if queue.filter.until is not None:  # both bounds: the rule's end and the window's
        compiled = _with_rule_end(compiled, queue.filter)
    where = list(compiled.where)
    if rescored is not None:
        where.append(traces.c.trace_id.in_(select(scores.c.trace_id).where(rescored)))
    columns: list[Any] = [traces.c.trace_id, traces.c.started_at, *compiled.columns]
    if compiled.needs_verdicts:
        columns.append(traces.c.guard_verdicts)
    stmt = select(*columns).where(*where).order_by(traces.c.started_at, traces.c.trace_id)
    newest = flt.since if isinstance(flt.since, float) else 0.0
    async with engine.connect() as conn:
        result = await conn.stream(stmt)
        async for row in result:
            newest = row.started_at
            if compiled.accepts(row) and sampled(queue.id, row.trace_id, queue.sample):
                found[row.trace_id] = row.started_at
                if len(found) >= MAX_PER_FILL:
                    break
        await result.close()
    return newest


def _with_rule_end(compiled: Compiled, rule: TraceFilter) -> Compiled:
    """The window's conditions plus the rule's own `until` (resolved when the queue was made,
    so it is an epoch here)."""
    if isinstance(rule.until, int | float):
        compiled.where.append(traces.c.started_at < float(rule.until))
    return compiled


def _oldest(pair: tuple[str, float]) -> tuple[float, str]:
    return pair[1], pair[0]
