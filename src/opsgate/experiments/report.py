"""An experiment as JSON: its definition and state, the per-variant table, the metric over time
with its always-valid intervals, a bandit's allocation over time, and the decision log. The
admin API, the CLI (over the API) and the dashboard all show this one shape."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opsgate.experiments.decide import Assessment, Guard, VariantStats
from opsgate.experiments.model import Event, Experiment
from opsgate.experiments.stats import Interval

SERIES_POINTS = 12


def experiment_json(exp: Experiment) -> dict[str, Any]:
    spec = exp.spec
    return {
        "object": "experiment",
        "name": exp.name,
        "team_id": exp.team_id or None,
        "source": exp.source,
        "status": exp.status,
        "decision": exp.decision.text if exp.decision else "running",
        "decision_detail": exp.decision.to_json() if exp.decision else None,
        "promoted": exp.promoted,
        "traffic": spec.traffic.model_dump(exclude_none=True),
        "unit": spec.unit,
        "allocation": spec.allocation,
        "control": spec.control_name,
        "variants": [v.model_dump(exclude_none=True) for v in spec.variants],
        "weights": dict(zip([v.name for v in spec.variants], exp.current_weights(), strict=True)),
        "metric": spec.metric.model_dump(exclude_none=True),
        "guardrails": spec.guardrails.model_dump(),
        "alpha": spec.alpha,
        "min_units": spec.min_units,
        "share": spec.share,
        "exclusion_group": spec.exclusion_group,
        "auto_promote": spec.auto_promote,
        "created_at": exp.created_at,
        "updated_at": exp.updated_at,
        "created_by": exp.created_by,
        "definition": spec.model_dump(mode="json", exclude_none=True),
    }


def interval_json(i: Interval | None) -> dict[str, float] | None:
    if i is None:
        return None
    return {"estimate": i.estimate, "lower": i.lower, "upper": i.upper, "p_value": i.p_value}


def _guard(g: Guard) -> dict[str, Any]:
    return {
        "name": g.name,
        "status": g.status,
        "control": g.control,
        "value": g.value,
        "limit": g.limit,
    }


def variant_json(v: VariantStats) -> dict[str, Any]:
    return {
        "name": v.name,
        "control": v.control,
        "units": v.units,
        "requests": v.requests,
        "scored_units": v.scored,
        "mean": v.mean,
        "interval": interval_json(v.interval),
        "difference": interval_json(v.diff),
        "p_value_adjusted": v.p_adjusted,
        "prob_best": v.prob_best,
        "cost_per_request": v.cost_per_request,
        "error_rate": v.error_rate,
        "p95_latency_ms": v.p95_ms,
        "guardrails": [_guard(g) for g in v.guards],
    }


def stats_json(assessment: Assessment) -> dict[str, Any]:
    verdict = assessment.verdict
    return {
        "ready": assessment.ready,
        "verdict": None
        if verdict is None
        else {"outcome": verdict.outcome, "variant": verdict.variant, "reason": verdict.reason},
        "variants": [variant_json(v) for v in assessment.variants],
    }


def series_json(points: Sequence[tuple[float, Assessment]]) -> list[dict[str, Any]]:
    """The metric over time: per cut-off, each variant's mean and interval so far."""
    return [
        {
            "at": at,
            "variants": {
                v.name: {
                    "units": v.scored,
                    "mean": v.mean,
                    "lower": v.interval.lower if v.interval else None,
                    "upper": v.interval.upper if v.interval else None,
                }
                for v in a.variants
            },
        }
        for at, a in points
    ]


def allocation_json(exp: Experiment, events: Sequence[Event]) -> list[dict[str, Any]]:
    """The weights over time: the first split, each bandit re-allocation, and now."""
    names = [v.name for v in exp.spec.variants]
    first = dict(zip(names, exp.spec.weights(), strict=True))
    points: list[tuple[float, dict[str, float]]] = [(exp.created_at, first)]
    points += [(e.at, e.detail.get("weights", {})) for e in events if e.kind == "allocation"]
    points.append((max(time.time(), points[-1][0]), points[-1][1]))  # the weights hold till now
    return [{"at": at, "weights": weights} for at, weights in points]


def log_json(events: Sequence[Event]) -> list[dict[str, Any]]:
    return [e.to_json() for e in events if e.kind != "allocation"]
