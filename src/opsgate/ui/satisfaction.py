"""The Overview's satisfaction panel: per model, the rate of `true` of each boolean metric and
the mean of each float metric over the page's range and filters, from the one score store's
rollup (one grouped query), in the caller's scope."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from opsgate.access.permissions import scope_filter, scoped_filters
from opsgate.access.principal import Principal
from opsgate.config.feedback import MetricConfig
from opsgate.feedback.scores import SCORE_DIMENSIONS, RollupQuery, RollupRow, ScoreDimension

ONE_BUCKET = 86_400 * 10**6
"""A step wider than any epoch: the whole range in one bucket."""


@dataclass(slots=True)
class Cell:
    """One metric for one model: mean (the rate of `true` for a boolean) over `count` scores."""

    count: int = 0
    total: float = 0.0

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass(slots=True)
class Panel:
    metrics: list[tuple[str, MetricConfig]]
    rows: list[tuple[str, dict[str, Cell]]] = field(default_factory=list)
    """(model, metric -> cell), models by score count, busiest first; then "all models"."""


def query(who: Principal, since: float, until: float, filters: Mapping[str, str]) -> RollupQuery:
    """Scores of the range, grouped by model, with the page's filters and the caller's scope."""
    asked: dict[str, str] = {k: v for k, v in filters.items() if k in SCORE_DIMENSIONS}
    rule: dict[str, str] = {k: v for k, v in scope_filter(who).items() if k in SCORE_DIMENSIONS}
    forced = scoped_filters(who, {name: asked.get(name) for name in rule}, rule)
    merged: dict[ScoreDimension, str] = {**asked, **forced}  # type: ignore[dict-item]
    return RollupQuery(since, until, ONE_BUCKET, ("model",), merged)


def panel(rows: Sequence[RollupRow], declared: Mapping[str, MetricConfig]) -> Panel:
    shown = [(n, m) for n, m in declared.items() if m.type in ("boolean", "float")]
    names = {n for n, _ in shown}
    by_model: dict[str, dict[str, Cell]] = {}
    overall: dict[str, Cell] = {}
    for row in rows:
        cells = by_model.setdefault(row.group.get("model") or "(none)", {})
        for name, totals in row.metrics.items():
            if name not in names or totals.mean is None:
                continue
            for target in (cells.setdefault(name, Cell()), overall.setdefault(name, Cell())):
                target.count += totals.count
                target.total += totals.mean * totals.count
    ranked = sorted(by_model.items(), key=lambda kv: -sum(c.count for c in kv[1].values()))
    result = Panel(shown, [(m, cells) for m, cells in ranked if cells])
    if len(result.rows) > 1:
        result.rows.append(("all models", overall))
    return result
