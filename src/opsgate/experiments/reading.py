"""`ExperimentReader`: an experiment's outcomes read and judged, without changing anything —
what the service's evaluation, the admin API's report and promotion's checks all read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.config.schema import Config
from opsgate.experiments.decide import Assessment, VariantStats, assess
from opsgate.experiments.model import Event, Experiment
from opsgate.experiments.outcomes import Observed, arms, observe
from opsgate.experiments.report import (
    SERIES_POINTS,
    allocation_json,
    experiment_json,
    log_json,
    series_json,
    stats_json,
)


class ExperimentReader:
    def __init__(self, engine: AsyncEngine, config: Callable[[], Config]) -> None:
        self.engine = engine
        self.config = config

    async def observed(self, exp: Experiment) -> list[Observed]:
        metric = self.config().feedback.metrics.get(exp.spec.metric.name)
        if metric is None:
            return []
        return await observe(self.engine, exp.spec, metric)

    def bounds(self, exp: Experiment) -> list[float | None]:
        """Where the metric's values lie: [0, 1] for boolean, the declared min and max else."""
        metric = self.config().feedback.metrics.get(exp.spec.metric.name)
        if metric is None or metric.type == "boolean":
            return [0.0, 1.0]
        return [metric.min, metric.max]

    def kind(self, exp: Experiment) -> tuple[bool, bool]:
        """(the metric is boolean, higher is better)."""
        metric = self.config().feedback.metrics.get(exp.spec.metric.name)
        boolean = metric is not None and metric.type == "boolean"
        return boolean, metric is None or metric.optimize == "max"

    async def assess(
        self, exp: Experiment, observed: Sequence[Observed] | None = None
    ) -> Assessment:
        if observed is None:
            observed = await self.observed(exp)
        boolean, maximize = self.kind(exp)
        return assess(arms(exp.spec, observed), exp.spec, boolean=boolean, maximize=maximize)

    async def report(self, exp: Experiment, events: Sequence[Event]) -> dict[str, Any]:
        """The definition and state, the per-variant table, the metric over time (the table as
        it stood at `SERIES_POINTS` moments), the weights over time and the decision log."""
        observed = await self.observed(exp)
        boolean, maximize = self.kind(exp)

        def at(until: float | None) -> Assessment:
            data = arms(exp.spec, observed, until=until)
            return assess(data, exp.spec, boolean=boolean, maximize=maximize)

        first = min((o.first for o in observed), default=0.0)
        last = max((o.first for o in observed), default=0.0)
        step = (last - first) / SERIES_POINTS
        cuts = [first + step * (i + 1) for i in range(SERIES_POINTS)] if observed else []
        points = [(cut, at(cut + 1e-6)) for cut in cuts]
        return {
            **experiment_json(exp),
            "stats": stats_json(at(None)),
            "series": series_json(points),
            "allocations": allocation_json(exp, events),
            "metric_bounds": self.bounds(exp),
            "log": log_json(events),
        }


def worse(row: VariantStats, assessment: Assessment, exp: Experiment, maximize: bool) -> bool:
    """The variant is significantly worse than the control, or (the control) than another."""
    alpha = exp.spec.alpha
    if row.control:
        return any(
            r.p_adjusted is not None
            and r.p_adjusted <= alpha
            and r.diff is not None
            and (r.diff.estimate > 0) == maximize
            for r in assessment.variants
            if not r.control
        )
    return (
        row.p_adjusted is not None
        and row.p_adjusted <= alpha
        and row.diff is not None
        and (row.diff.estimate < 0) == maximize
    )
