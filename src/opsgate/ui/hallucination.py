"""The Overview's hallucination-rate panel: per model, the share of live answers that online
scoring's hallucination detector flagged, over the page's range and in the current hour, from
the one score store's rollup of `online` scores (hourly buckets, one grouped query), in the
caller's scope.

The metrics shown are those an `evals.online` rule writes with a `hallucination` scorer. A
`boolean` metric records "flagged", so its mean is the hallucination rate; a `float` metric
records the detector's support (1 - its probability of a hallucination), shown as a mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from opsgate.access.principal import Principal
from opsgate.config.evals import EvalsConfig, scorer_metric
from opsgate.config.feedback import MetricConfig
from opsgate.feedback.scores import RollupQuery, RollupRow
from opsgate.ui import satisfaction

HOUR = 3600


def metrics(evals: EvalsConfig, declared: Mapping[str, MetricConfig]) -> list[tuple[str, str]]:
    """(metric, its type) written by online hallucination scorers, in config order."""
    found: dict[str, str] = {}
    for rule in evals.online:
        for spec in rule.scorers:
            kind = spec if isinstance(spec, str) else spec.get("type")
            name = scorer_metric(spec)
            if kind == "hallucination" and name in declared:
                found.setdefault(name, declared[name].type)
    return list(found.items())


def query(who: Principal, since: float, until: float, filters: Mapping[str, str]) -> RollupQuery:
    """Online scores of the range by model and hour, with the page's filters and the scope."""
    base = satisfaction.query(who, since, until, filters)
    return RollupQuery(since, until, HOUR, ("model",), {**base.filters, "source": "online"})


@dataclass(slots=True)
class Rate:
    count: int = 0
    total: float = 0.0

    def add(self, mean: float, count: int) -> None:
        self.count += count
        self.total += mean * count

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass(slots=True)
class Panel:
    metrics: list[tuple[str, str]]
    rows: list[tuple[str, dict[str, Rate], dict[str, Rate]]] = field(default_factory=list)
    """(model, metric -> over the range, metric -> this hour), busiest first."""


def panel(rows: Sequence[RollupRow], shown: list[tuple[str, str]], now: float) -> Panel:
    names = {name for name, _ in shown}
    hour = int(now // HOUR) * HOUR
    ranged: dict[str, dict[str, Rate]] = {}
    recent: dict[str, dict[str, Rate]] = {}
    for row in rows:
        model = row.group.get("model") or "(none)"
        for name, totals in row.metrics.items():
            if name not in names or totals.mean is None:
                continue
            ranged.setdefault(model, {}).setdefault(name, Rate()).add(totals.mean, totals.count)
            if row.bucket >= hour:
                recent.setdefault(model, {}).setdefault(name, Rate()).add(totals.mean, totals.count)
    order = sorted(ranged, key=lambda m: -sum(r.count for r in ranged[m].values()))
    return Panel(shown, [(m, ranged[m], recent.get(m, {})) for m in order])
