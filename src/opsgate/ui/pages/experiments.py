"""Experiments: the list (status, decision, traffic, variants) and, per experiment, the
per-variant table (units, metric with its always-valid interval, difference to the control,
Holm-adjusted p-value, probability of being best, guardrails), the metric over time with its
intervals, a bandit's allocation over time, and the decision log; pause, resume, stop and
promote for callers with `experiments:manage`.

Every change goes through `ExperimentService`, exactly as the admin API's do: the same team
scope, the same state rules (409 from the wrong state), the same audit entries; promoting a
prompt variant to `production` still needs `prompts:promote` (the prompt registry checks it).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from opsgate.access.permissions import Permission, is_global
from opsgate.experiments.errors import ExperimentNotFoundError
from opsgate.experiments.model import Experiment, Status
from opsgate.experiments.report import experiment_json
from opsgate.experiments.service import ExperimentService
from opsgate.ui.forms import field
from opsgate.ui.registry import Page
from opsgate.ui.visit import Visit, view
from opsgate.web.audit import actor_of

P = Permission
ACTIONS: dict[str, Status] = {"pause": "paused", "resume": "running", "stop": "stopped"}


def _service(visit: Visit) -> ExperimentService:
    service: ExperimentService = visit.gateway.experiments
    return service


def _visible(visit: Visit, exp: Experiment) -> bool:
    return is_global(visit.principal) or exp.team_id == (visit.principal.team_id or "")


async def _find(visit: Visit) -> Experiment:
    service = _service(visit)
    await service.refresh()
    name = visit.request.path_params["name"]
    exp = service.experiments.get(name)
    if exp is None or not _visible(visit, exp):
        raise ExperimentNotFoundError(f"There is no experiment named {name!r}.")
    return exp


@view(P.EXPERIMENTS_READ)
async def experiment_list(visit: Visit) -> Response:
    service = _service(visit)
    await service.refresh()
    rows = [experiment_json(e) for e in service.experiments.values() if _visible(visit, e)]
    return visit.render("experiments.html", {"experiments": rows})


def _clip(value: float | None, low: float | None, high: float | None) -> float | None:
    if value is None:
        return None
    value = max(value, low) if low is not None else value
    return min(value, high) if high is not None else value


def metric_chart(report: dict[str, Any]) -> dict[str, Any]:
    """The metric over time: per variant its mean and the interval's bounds (drawn within the
    metric's range: an early interval is wider than the values can be), in the chart format of
    `usage_charts.charts`."""
    series = report["series"]
    names = [v["name"] for v in report["variants"]]
    low, high = report["metric_bounds"]
    lines = []
    for name in names:
        for key, label in (("mean", name), ("lower", f"{name} lower"), ("upper", f"{name} upper")):
            values = [
                _clip(point["variants"].get(name, {}).get(key), low, high) for point in series
            ]
            lines.append({"label": label, "values": values})
    allocation = report["allocations"]
    shares = [
        {"label": name, "values": [round(100 * p["weights"].get(name, 0.0), 2) for p in allocation]}
        for name in names
    ]
    return {
        "metric": {
            "x": [int(p["at"]) for p in series],
            "charts": [{"id": "metric", "title": "Metric over time", "unit": "", "series": lines}],
        },
        "allocation": {
            "x": [int(p["at"]) for p in allocation],
            "charts": [{"id": "allocation", "title": "Allocation", "unit": "%", "series": shares}],
        },
    }


@view(P.EXPERIMENTS_READ)
async def experiment_detail(visit: Visit) -> Response:
    exp = await _find(visit)
    report = await _service(visit).report(exp.name)
    context = {
        "e": report,
        "charts": metric_chart(report),
        "may_manage": visit.may(P.EXPERIMENTS_MANAGE),
        "done": visit.request.query_params.get("done"),
    }
    return visit.render("experiment.html", context)


def _back(visit: Visit, name: str, done: str) -> Response:
    root = visit.request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/experiments/{name}?done={done}", status_code=303)


@view(P.EXPERIMENTS_MANAGE)
async def change(visit: Visit) -> Response:
    exp = await _find(visit)
    action = visit.request.path_params["action"]
    actor = actor_of(visit.request.scope)
    if action == "promote":
        variant = field(visit.form, "variant") or ""
        await _service(visit).promote(exp.name, variant, actor=actor, who=visit.principal)
    elif action in ACTIONS:
        await _service(visit).set_status(exp.name, ACTIONS[action], actor=actor)
    else:
        raise ExperimentNotFoundError(f"There is no action {action!r}.")
    return _back(visit, exp.name, action)


PAGE = Page(
    "experiments",
    "Experiments",
    "/experiments",
    any_of=(P.EXPERIMENTS_READ,),
    routes=(
        Route("/experiments", experiment_list, methods=["GET"]),
        Route("/experiments/{name}", experiment_detail, methods=["GET"]),
        Route("/experiments/{name}/{action}", change, methods=["POST"]),
    ),
    order=37,
)
