"""From outcomes to a decision: the per-variant table and `running`, `winner: X`,
`no difference` or `stopped by guardrail`. Pure: the same arms give the same answer.

The unit of analysis is the unit of assignment (docs/experiments.md): each unit contributes one
outcome (the mean of its scores) and one value per guardrail (its mean cost per request, its
share of failed requests, its share of requests slower than the control's p95 plus the allowed
rise), so the observations the tests see are independent across units.

Order of the rules, each only once every variant has `min_units` units with an outcome (the
guardrails: with requests):
1. a guardrail harmed (one-sided, always valid): `stopped by guardrail`, naming the variant;
2. a treatment beats the control (Holm over the treatments): `winner`, the best such one; every
   treatment significantly worse than the control: `winner` the control;
3. every difference's interval lies inside +-min_effect, or every variant passed `max_units`:
   `no difference`;
4. else `running`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from opsgate.config.experiments import ExperimentConfig
from opsgate.experiments.stats import (
    Interval,
    Summary,
    difference,
    exceeds,
    harmed,
    holm_adjusted,
    mean_interval,
    prob_best,
)

GuardStatus = Literal["ok", "harm", "waiting", "off"]
SLOW_SHARE = 0.05
"""p95: a variant harms latency when more than 5% of its requests are slower than the
control's p95 plus the allowed rise."""


@dataclass(frozen=True, slots=True)
class Arm:
    """One variant's data, one entry per unit (outcomes: only units with one)."""

    name: str
    outcomes: Sequence[float]
    units: int
    requests: int
    unit_cost: Sequence[float] = ()
    """Mean cost per request of each unit, USD."""
    unit_errors: Sequence[float] = ()
    """Share of failed requests of each unit."""
    unit_latencies: Sequence[Sequence[float]] = ()
    """Each unit's request latencies, ms."""


@dataclass(frozen=True, slots=True)
class Guard:
    name: str
    status: GuardStatus
    control: float | None
    value: float | None
    limit: float | None


@dataclass(frozen=True, slots=True)
class VariantStats:
    name: str
    control: bool
    units: int
    requests: int
    scored: int
    mean: float | None
    interval: Interval | None
    diff: Interval | None
    p_adjusted: float | None
    prob_best: float
    cost_per_request: float | None
    error_rate: float | None
    p95_ms: float | None
    guards: list[Guard] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Literal["winner", "no_difference", "guardrail"]
    variant: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Assessment:
    variants: list[VariantStats]
    verdict: Verdict | None
    ready: bool
    """Every variant has `min_units` units with an outcome."""


def default_tau(spec: ExperimentConfig, boolean: bool, arms: Sequence[Summary]) -> float:
    """The mixture scale: `min_effect`, else 0.05 (boolean) or a tenth of the pooled sd."""
    if spec.min_effect is not None:
        return spec.min_effect
    if boolean:
        return 0.05
    pooled = [s.var for s in arms if s.n > 1]
    return 0.1 * math.sqrt(sum(pooled) / len(pooled)) if pooled else 1.0


def assess(
    arms: Sequence[Arm], spec: ExperimentConfig, *, boolean: bool, maximize: bool
) -> Assessment:
    names = [a.name for a in arms]
    c = names.index(spec.control_name)
    summaries = [
        Summary.of_counts(round(sum(a.outcomes)), len(a.outcomes))
        if boolean and all(v in (0.0, 1.0) for v in a.outcomes)
        else Summary.of(a.outcomes)
        for a in arms
    ]
    tau = default_tau(spec, boolean, summaries)
    ready = all(s.n >= spec.min_units for s in summaries)
    diffs: list[Interval | None] = [
        difference(summaries[c], s, tau, spec.alpha) if s.n and summaries[c].n and i != c else None
        for i, s in enumerate(summaries)
    ]
    treated = [i for i in range(len(arms)) if i != c and diffs[i] is not None]
    adjusted = holm_adjusted([diffs[i].p_value for i in treated])  # type: ignore[union-attr]
    p_adj: dict[int, float] = dict(zip(treated, adjusted, strict=True))
    best = (
        prob_best(summaries, boolean=boolean, maximize=maximize)
        if any(s.n for s in summaries)
        else [0.0] * len(arms)
    )
    guards = _guards(arms, c, spec)
    rows = [
        VariantStats(
            name=a.name,
            control=i == c,
            units=a.units,
            requests=a.requests,
            scored=s.n,
            mean=s.mean if s.n else None,
            interval=mean_interval(s, tau, spec.alpha) if s.n else None,
            diff=diffs[i],
            p_adjusted=p_adj.get(i),
            prob_best=best[i],
            cost_per_request=_mean(a.unit_cost),
            error_rate=_mean(a.unit_errors),
            p95_ms=_p95([x for unit in a.unit_latencies for x in unit]),
            guards=guards[i],
        )
        for i, (a, s) in enumerate(zip(arms, summaries, strict=True))
    ]
    verdict = _verdict(rows, c, spec, ready, summaries, tau, maximize)
    return Assessment(rows, verdict, ready)


def _verdict(
    rows: list[VariantStats],
    c: int,
    spec: ExperimentConfig,
    ready: bool,
    summaries: list[Summary],
    tau: float,
    maximize: bool,
) -> Verdict | None:
    for row in rows:
        harm = [g.name for g in row.guards if g.status == "harm"]
        if harm:
            return Verdict("guardrail", row.name, f"{row.name}: {', '.join(harm)} beyond the limit")
    if not ready:
        return None
    sign = 1.0 if maximize else -1.0
    alpha = spec.alpha
    better = [
        r
        for r in rows
        if not r.control
        and r.p_adjusted is not None
        and r.p_adjusted <= alpha
        and r.diff is not None
        and sign * r.diff.estimate > 0
    ]
    if better:
        top = max(better, key=lambda r: sign * (r.mean or 0.0))
        return Verdict(
            "winner", top.name, f"{top.name} beats {rows[c].name} (p={top.p_adjusted:.4g})"
        )
    treated = [r for r in rows if not r.control]
    worse = [
        r
        for r in treated
        if r.p_adjusted is not None
        and r.p_adjusted <= alpha
        and r.diff is not None
        and sign * r.diff.estimate < 0
    ]
    if treated and len(worse) == len(treated):
        return Verdict("winner", rows[c].name, f"every treatment is worse than {rows[c].name}")
    margin = spec.min_effect if spec.min_effect is not None else tau
    if all(
        r.diff is not None and -margin < r.diff.lower and r.diff.upper < margin for r in treated
    ):
        return Verdict("no_difference", None, f"every difference lies within +-{margin:.4g}")
    if spec.max_units is not None and all(s.n >= spec.max_units for s in summaries):
        return Verdict("no_difference", None, f"{spec.max_units} units per variant, no winner")
    return None


def _guards(arms: Sequence[Arm], c: int, spec: ExperimentConfig) -> list[list[Guard]]:
    g = spec.guardrails
    control = arms[c]
    out: list[list[Guard]] = []
    for i, arm in enumerate(arms):
        if i == c:
            out.append([])
            continue
        row = [
            _cost(control, arm, g.cost_increase, spec),
            _errors(control, arm, g.error_rate_increase, spec),
            _latency(control, arm, g.p95_latency_ms, spec),
        ]
        out.append([x for x in row if x.status != "off"])
    return out


def _enough(control: Sequence[object], arm: Sequence[object], spec: ExperimentConfig) -> bool:
    return len(control) >= spec.min_units and len(arm) >= spec.min_units


def _cost(control: Arm, arm: Arm, rise: float | None, spec: ExperimentConfig) -> Guard:
    if rise is None:
        return Guard("cost_per_request", "off", None, None, None)
    base, mine = _mean(control.unit_cost), _mean(arm.unit_cost)
    limit = None if base is None else base * (1 + rise)
    if base is None or mine is None or not _enough(control.unit_cost, arm.unit_cost, spec):
        return Guard("cost_per_request", "waiting", base, mine, limit)
    a, b = Summary.of(control.unit_cost), Summary.of(arm.unit_cost)
    margin = base * rise
    tau = max(margin, 1e-9)
    status: GuardStatus = "harm" if harmed(a, b, margin, tau, spec.alpha) else "ok"
    return Guard("cost_per_request", status, base, mine, limit)


def _errors(control: Arm, arm: Arm, rise: float | None, spec: ExperimentConfig) -> Guard:
    if rise is None:
        return Guard("error_rate", "off", None, None, None)
    base, mine = _mean(control.unit_errors), _mean(arm.unit_errors)
    limit = None if base is None else base + rise
    if base is None or mine is None or not _enough(control.unit_errors, arm.unit_errors, spec):
        return Guard("error_rate", "waiting", base, mine, limit)
    a, b = Summary.of(control.unit_errors), Summary.of(arm.unit_errors)
    tau = max(rise, 0.01)
    status: GuardStatus = "harm" if harmed(a, b, rise, tau, spec.alpha) else "ok"
    return Guard("error_rate", status, base, mine, limit)


def _latency(control: Arm, arm: Arm, rise: float | None, spec: ExperimentConfig) -> Guard:
    if rise is None:
        return Guard("p95_latency_ms", "off", None, None, None)
    base = _p95([x for unit in control.unit_latencies for x in unit])
    mine = _p95([x for unit in arm.unit_latencies for x in unit])
    limit = None if base is None else base + rise
    if (
        limit is None
        or mine is None
        or not _enough(control.unit_latencies, arm.unit_latencies, spec)
    ):
        return Guard("p95_latency_ms", "waiting", base, mine, limit)
    slow = [sum(x > limit for x in unit) / len(unit) for unit in arm.unit_latencies if unit]
    over = exceeds(Summary.of(slow), SLOW_SHARE, 0.05, spec.alpha)
    return Guard("p95_latency_ms", "harm" if over else "ok", base, mine, limit)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _p95(values: Sequence[float]) -> float | None:
    return float(np.quantile(values, 0.95)) if len(values) else None
