"""From tuning job and adapter rows to what the Tuning page shows: the loss curve in the chart
format of `usage_charts.charts` (x is the step, not a time), progress, the evaluation base vs
adapter when the job has one, and which experiments mention an adapter. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opsgate.experiments.model import Experiment
from opsgate.routing.deployment import ModelGroup

FINAL = ("succeeded", "failed", "cancelled")


def loss_chart(job: Mapping[str, Any]) -> dict[str, Any]:
    """The training loss per step, with the validation loss of the base (before) and of the
    adapter (after) as flat reference lines when the job has them."""
    losses = [float(v) for v in job.get("losses") or []]
    xs = list(range(1, len(losses) + 1))
    series: list[dict[str, Any]] = [{"label": "training loss", "values": losses}]
    metrics = job.get("metrics") or {}
    for key, label in (
        ("validation_before", "validation, base"),
        ("validation_after", "validation, adapter"),
    ):
        value = _number(metrics.get(key))
        if value is not None and xs:
            series.append({"label": label, "values": [value] * len(xs)})
    return {
        "x": xs,
        "time": False,
        "x_label": "step",
        "charts": [{"id": "loss", "title": "Loss per step", "unit": "", "series": series}],
    }


def progress(job: Mapping[str, Any]) -> float | None:
    """Steps done over total steps (0 to 1); None before the worker has said the total."""
    total = job.get("total_steps")
    if not total:
        return None
    return min(1.0, int(job.get("steps") or 0) / int(total))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _scorer_rows(raw: Any) -> list[dict[str, Any]]:
    """Per scorer: base, adapter, delta and n, from a `{name: {...}}` map or a list of rows."""
    items: Iterable[tuple[str, Any]]
    if isinstance(raw, Mapping):
        items = ((str(k), v) for k, v in raw.items())
    elif isinstance(raw, list):
        items = (
            (str(v.get("name") or v.get("scorer") or "?"), v) for v in raw if isinstance(v, Mapping)
        )
    else:
        return []
    rows = []
    for name, value in items:
        if not isinstance(value, Mapping):
            continue
        base, adapter = _number(value.get("base")), _number(value.get("adapter"))
        if base is None and adapter is None and not {"scored", "failed"} & set(value):
            continue  # a scorer's settings, not its results (all-failed results stay)
        delta = _number(value.get("delta"))
        if delta is None and base is not None and adapter is not None:
            delta = adapter - base
        row = {"name": name, "base": base, "adapter": adapter, "delta": delta}
        rows.append(
            {**row, "n": value.get("scored", value.get("n")), "failed": value.get("failed")}
        )
    return rows


def evaluation(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The scorer evaluation base vs adapter (`metrics.evaluation`) as rows for the page, or
    None when the job has none (older jobs, or jobs that only record validation loss)."""
    raw = (metrics or {}).get("evaluation")
    if not isinstance(raw, Mapping):
        return None
    scorers = _scorer_rows(raw.get("scorers", raw.get("scores")))
    examples = [e for e in raw.get("examples") or [] if isinstance(e, Mapping)]
    if not scorers and not examples:
        return None
    return {"scorers": scorers, "examples": examples[:10], "n": raw.get("n")}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def distillation(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A distilled student's comparison with its teacher and base (`metrics.distillation`,
    written by `opsgate tuning distill`): per row its role, model, quality per scorer, cost per
    1k requests and latency; None when the job was no distillation."""
    raw = (metrics or {}).get("distillation")
    if not isinstance(raw, Mapping) or not isinstance(raw.get("rows"), list):
        return None
    rows = [r for r in raw["rows"] if isinstance(r, Mapping)]
    scorers = [str(s) for s in raw.get("scorers") or []]
    table = []
    for row in rows:
        quality, latency = _mapping(row.get("quality")), _mapping(row.get("latency_ms"))
        table.append(
            {
                "role": str(row.get("role") or ""),
                "name": str(row.get("name") or ""),
                "quality": [_number(quality.get(s)) for s in scorers],
                "cost_per_1k_usd": _number(row.get("cost_per_1k_usd")),
                "median_ms": _number(latency.get("median")),
                "p95_ms": _number(latency.get("p95")),
            }
        )
    return {
        "teacher": raw.get("teacher"),
        "held_out": raw.get("held_out"),
        "reference": raw.get("reference"),
        "scorers": scorers,
        "rows": table,
        "assumptions": _mapping(raw.get("assumptions")),
    }


def _served_adapters(group: ModelGroup | None) -> set[str]:
    names: set[str] = set()
    for deployment in group.deployments if group is not None else ():
        config = deployment.config
        if config.adapter:
            names.add(config.adapter)
        names.update((config.team_adapters or {}).values())
    return names


def served_by(adapter: str, groups: Mapping[str, ModelGroup]) -> list[str]:
    """The models with a deployment serving `adapter` (for everyone or for a team), promotions
    included: they are laid over the config the groups are built from."""
    return sorted(name for name, group in groups.items() if adapter in _served_adapters(group))


def mentions(exp: Experiment, adapter: str, groups: Mapping[str, ModelGroup]) -> bool:
    """Whether an experiment puts `adapter` in front of traffic: a variant's model is the
    adapter or a model whose deployments serve it, or a variant parameter names it."""
    spec = exp.spec
    models = [v.model for v in spec.variants if v.model] + [spec.traffic.model or ""]
    if adapter in models:
        return True
    if any(adapter in _served_adapters(groups.get(m)) for m in models if m):
        return True
    return any(adapter == value for v in spec.variants for value in v.params.values())
