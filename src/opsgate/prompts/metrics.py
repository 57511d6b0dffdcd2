"""Feedback per prompt version: the mean of each score metric over the traces a version served.

Scores carry the trace id, the join key of the improvement loop (feedback/scores.py), so
"did version 7 get fewer thumbs-up than 6?" is one grouped join of the score store's table with
the traces, on the index that leads with `prompt_name`. Boolean metrics average to the rate of
`true`; category and comment scores have no value and are left out. Requests, cost, latency and
errors per version come from the usage rollups (`group_by=prompt_version`), not from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.prompts.errors import PromptStoreUnavailableError
from opsgate.store.tables.feedback import scores
from opsgate.store.tables.traces import traces


@dataclass(frozen=True, slots=True)
class MetricMean:
    metric: str
    mean: float
    count: int


async def feedback_by_version(
    engine: AsyncEngine, team_id: str, name: str, since: float, until: float
) -> dict[str, list[MetricMean]]:
    """Version (as text) → the mean of each metric over its traces started in [since, until)."""
    team = traces.c.team_id == team_id if team_id else traces.c.team_id.is_(None)
    stmt = (
        select(
            traces.c.prompt_version,
            scores.c.metric,
            func.avg(scores.c.value),
            func.count(scores.c.value),
        )
        .select_from(scores.join(traces, traces.c.trace_id == scores.c.trace_id))
        .where(
            traces.c.prompt_name == name,
            team,
            traces.c.started_at >= since,
            traces.c.started_at < until,
            scores.c.value.is_not(None),
        )
        .group_by(traces.c.prompt_version, scores.c.metric)
        .order_by(traces.c.prompt_version, scores.c.metric)
    )
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
    except (OSError, SQLAlchemyError) as exc:
        raise PromptStoreUnavailableError() from exc
    out: dict[str, list[MetricMean]] = {}
    for version, metric, mean, count in rows:
        out.setdefault(str(version), []).append(MetricMean(metric, float(mean), int(count)))
    return out
