"""The outcome join: each variant's units, requests and scores, read from the one score store.

Which variant served a request is on its trace (`traces.experiment`, `traces.variant`); a score
reaches a variant through its trace (`scores.trace_id`, inference-level metrics) or through its
session (`scores.session_id` within the trace's team, session-level metrics). Nothing is copied:
a score that arrives a day late counts the next time the experiment is read. A unit's outcome is
the mean of its scores; a unit with requests but no score is missing (left out), unless the
metric says `missing: zero` (no thumbs up counts as not satisfied).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.config.experiments import ExperimentConfig
from opsgate.config.feedback import MetricConfig
from opsgate.experiments.decide import Arm
from opsgate.store.tables.feedback import scores
from opsgate.store.tables.traces import traces

MAX_TRACES = 500_000
"""An experiment read looks at its latest traces up to this many."""


def unit_column(unit: str) -> ColumnElement[Any]:
    columns = {
        "end_user": traces.c.end_user,
        "session": traces.c.session_id,
        "key": traces.c.key_id,
        "request": traces.c.trace_id,
    }
    return columns[unit]


@dataclass(slots=True)
class _Unit:
    requests: int = 0
    errors: int = 0
    cost_micros: int = 0
    latencies: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    first: float = 0.0


@dataclass(frozen=True, slots=True)
class Observed:
    """One unit's data with the time it first appeared (for the metric over time)."""

    variant: str
    unit: str
    first: float
    requests: int
    errors: int
    cost_micros: int
    latencies: tuple[float, ...]
    scores: tuple[float, ...]


async def observe(
    engine: AsyncEngine, spec: ExperimentConfig, metric: MetricConfig, *, since: float = 0.0
) -> list[Observed]:
    """Every unit of the experiment with its requests and scores."""
    unit = unit_column(spec.unit).label("unit")
    mine = and_(traces.c.experiment == spec.name, traces.c.started_at >= since)
    trace_rows = (
        select(
            traces.c.variant,
            unit,
            traces.c.started_at,
            traces.c.status,
            traces.c.cost_micros,
            traces.c.duration_ms,
        )
        .where(mine, unit.is_not(None), traces.c.variant.is_not(None))
        .order_by(traces.c.started_at.desc())
        .limit(MAX_TRACES)
    )
    if metric.level == "session":
        on = and_(
            scores.c.session_id == traces.c.session_id,
            scores.c.team_id.is_not_distinct_from(traces.c.team_id),
        )
        key = (scores.c.score_id, traces.c.variant, traces.c.session_id)
    else:
        on = scores.c.trace_id == traces.c.trace_id
        key = (scores.c.score_id, traces.c.variant, traces.c.trace_id)
    where = [mine, unit.is_not(None), scores.c.metric == spec.metric.name]
    where.append(scores.c.value.is_not(None))
    if spec.metric.source is not None:
        where.append(scores.c.source == spec.metric.source)
    score_rows = (
        select(traces.c.variant, unit, scores.c.value, *key[:1])
        .select_from(traces.join(scores, on))
        .where(*where)
        .distinct()
    )
    units: dict[tuple[str, str], _Unit] = defaultdict(_Unit)
    async with engine.connect() as conn:
        for r in await conn.execute(trace_rows):
            u = units[(r.variant, r.unit)]
            u.requests += 1
            u.errors += r.status != "ok"
            u.cost_micros += int(r.cost_micros or 0)
            u.latencies.append(float(r.duration_ms))
            u.first = min(u.first, float(r.started_at)) if u.first else float(r.started_at)
        seen: set[tuple[str, str, str]] = set()
        for s in await conn.execute(score_rows):
            if (s.variant, s.unit) in units and (s.score_id, s.variant, s.unit) not in seen:
                seen.add((s.score_id, s.variant, s.unit))
                units[(s.variant, s.unit)].scores.append(float(s.value))
    return [
        Observed(
            v, k, u.first, u.requests, u.errors, u.cost_micros, tuple(u.latencies), tuple(u.scores)
        )
        for (v, k), u in units.items()
    ]


def arms(
    spec: ExperimentConfig, observed: Sequence[Observed], *, until: float | None = None
) -> list[Arm]:
    """The per-variant arms (decide.Arm) from observed units, those first seen before `until`."""
    by_variant: dict[str, list[Observed]] = {v.name: [] for v in spec.variants}
    for o in observed:
        if o.variant in by_variant and (until is None or o.first < until):
            by_variant[o.variant].append(o)
    zero = spec.metric.missing == "zero"
    out = []
    for name, units in by_variant.items():
        outcomes = [
            sum(u.scores) / len(u.scores) if u.scores else 0.0 for u in units if u.scores or zero
        ]
        out.append(
            Arm(
                name=name,
                outcomes=outcomes,
                units=len(units),
                requests=sum(u.requests for u in units),
                unit_cost=[u.cost_micros / 1e6 / u.requests for u in units if u.requests],
                unit_errors=[u.errors / u.requests for u in units if u.requests],
                unit_latencies=[u.latencies for u in units if u.latencies],
            )
        )
    return out
