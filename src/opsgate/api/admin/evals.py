"""Admin API of eval runs (`/admin/v1/evals`): start, list, get, results, compare, cancel,
resume.

Thin handlers over `EvalService`. A run's calls are made with the caller's own key (the
`Authorization` of the start or resume request, kept in memory only), so they are traced and
budgeted as the caller's traffic. Runs are scoped like traces: an admin sees every run, a team
admin or viewer their team's, anyone else their own; a run outside the caller's scope is a 404,
as for an unknown id. The dataset comes inline (`dataset: {rows: [...]}`, at most the 1 MiB
body), or is a stored dataset the caller may see (`dataset: {name, version}`: reading its rows
needs `datasets:read` and `traces:read_bodies`, as reading them through the datasets API does);
the API never reads files on the server.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from starlette.responses import Response

from opsgate.access.errors import ConflictError
from opsgate.access.permissions import Permission, require
from opsgate.api.responses import JSONResponse
from opsgate.errors import BadRequestError, NotFoundError
from opsgate.evals.online import OnlineEvaluator
from opsgate.evals.runs import EvalSpec, RunInfo, parse_spec
from opsgate.evals.service import EvalService
from opsgate.web.admin import MAX_BODY, AdminCall, admin_route
from opsgate.web.body import read_json

P = Permission
BASE = "/admin/v1/evals"
RUN = BASE + "/{run_id}"
RESULTS_PAGE = 200


def _evals(call: AdminCall) -> EvalService:
    service: EvalService = call.gateway.evals
    return service


def _check_dataset(call: AdminCall, spec: EvalSpec) -> None:
    """A stored dataset's rows are prompts and answers: 403 without the right to read them."""
    if spec.dataset.name is not None:
        require(call.who, P.DATASETS_READ)
        require(call.who, P.TRACES_READ_BODIES)


def _check_targets(call: AdminCall, models: list[str]) -> None:
    known = call.gateway.model_groups
    for model in models:
        if model not in known:
            raise BadRequestError(
                f"unknown target model {model!r}", code="unknown_target", param="targets"
            )


async def _run(call: AdminCall) -> RunInfo:
    run = await _evals(call).get(call.path("run_id"))
    if run is None or not call.sees(team_id=run.team_id, user_id=run.user_id, key_id=run.owner):
        raise NotFoundError(f"no eval run {call.path('run_id')!r}", code="eval_run_not_found")
    return run


def _json(call: AdminCall, run: RunInfo) -> dict[str, Any]:
    body = run.as_json()
    dataset = dict(body["spec"].get("dataset") or {})
    if "rows" in dataset:  # the rows can be large: say how many, not what
        dataset["rows"] = len(dataset["rows"])
        body["spec"] = {**body["spec"], "dataset": dataset}
    body["running_here"] = _evals(call).running(run.id)
    return body


async def start(call: AdminCall) -> Response:
    """Start an eval run: a spec with inline rows; 201 with the run (status `running`)"""
    spec = parse_spec(await read_json(call.request, MAX_BODY), "body")
    _check_dataset(call, spec)
    _check_targets(call, [t.model for t in spec.targets if t.model is not None])
    run = await _evals(call).start(spec, call.who, call.caller_key, call.own_url, call.actor)
    return JSONResponse(_json(call, run), 201)


async def online_status(call: AdminCall) -> Response:
    """Online scoring: the rules in force, counts since start, judge spend this hour, and the
    recent window per rule and metric (what the Prometheus gauges show)"""
    online: OnlineEvaluator = call.gateway.online
    rules = []
    for rule in online.rules.rules:
        windows = {}
        for name in rule.metrics:
            mean, flagged, count = online.window(rule.model, name)
            windows[name] = {
                "mean": None if math.isnan(mean) else round(mean, 6),
                "flagged": None if math.isnan(flagged) else round(flagged, 6),
                "scores": count,
            }
        rules.append({**rule.config.model_dump(mode="json"), "window": windows})
    stats = dataclasses.asdict(online.stats)
    config = online.config
    return JSONResponse({
        "object": "evals.online",
        "enabled": online.enabled,
        "rules": rules,
        "stats": stats,
        "queue_depth": online.depth,
        "judge_usd_this_hour": online.cap.spent_micros / 1e6,
        "usd_per_hour": config.online_usd_per_hour,
        "window_seconds": config.online_window,
    })  # fmt: skip


async def list_runs(call: AdminCall) -> Response:
    """Eval runs in the caller's scope, newest first"""
    raw = call.query.get("limit") or "50"
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise BadRequestError("limit must be between 1 and 500", param="limit")
    runs = await _evals(call).runs(call.scope, int(raw))
    return JSONResponse({"object": "list", "data": [_json(call, r) for r in runs]})


async def get_run(call: AdminCall) -> Response:
    """One run: status, totals and the per-target, per-scorer summary"""
    return JSONResponse(_json(call, await _run(call)))


async def results(call: AdminCall) -> Response:
    """A run's per-row results (scores, status, latency, cost, trace id), in row order"""
    run = await _run(call)
    rows: list[dict[str, Any]] = []
    async for page in _evals(call).store.results(run.id, target=call.query.get("target")):
        rows += [
            {"target": r.target, "row_index": r.row_index, "row_id": r.row_id,
             "status": r.status, "error": r.error, "trace_id": r.trace_id,
             "latency_ms": r.latency_ms, "cost_usd": r.cost_micros / 1e6, "tokens": r.tokens,
             "scores": r.scores}
            for r in page
        ]  # fmt: skip
        if len(rows) >= RESULTS_PAGE:
            break
    return JSONResponse({"object": "list", "run_id": run.id, "data": rows[:RESULTS_PAGE]})


async def compare_runs(call: AdminCall) -> Response:
    """Paired comparison of this run against `base` (paired bootstrap, per scorer)"""
    run = await _run(call)
    base_id = call.query.get("base")
    if not base_id:
        raise BadRequestError("compare needs ?base=RUN_ID", param="base")
    base = await _evals(call).get(base_id)
    if base is None or not call.sees(team_id=base.team_id, user_id=base.user_id,
                                     key_id=base.owner):  # fmt: skip
        raise NotFoundError(f"no eval run {base_id!r}", code="eval_run_not_found")
    rows = await _evals(call).compare(base.id, run.id)
    return JSONResponse({"object": "list", "base": base.id, "run": run.id,
                         "data": [c.as_json() for c in rows]})  # fmt: skip


async def cancel(call: AdminCall) -> Response:
    """Stop a running run; its results so far are kept and it can be resumed"""
    run = await _run(call)
    if run.status != "running":
        raise ConflictError(f"eval run {run.id} is {run.status}, not running", code="not_running")
    return JSONResponse(_json(call, await _evals(call).cancel(run)))


async def resume(call: AdminCall) -> Response:
    """Continue a cancelled, failed or over-budget run with the caller's key"""
    run = await _run(call)
    if run.status in ("running", "completed") or _evals(call).running(run.id):
        raise ConflictError(f"eval run {run.id} is {run.status}", code="not_resumable")
    spec = parse_spec(run.spec, f"run {run.id}")
    _check_dataset(call, spec)
    resumed = await _evals(call).resume(
        run, spec, call.who, call.caller_key, call.own_url, call.actor
    )
    return JSONResponse(_json(call, resumed))


routes = [
    admin_route("POST", BASE, start, P.EVALS_RUN),
    admin_route("GET", BASE, list_runs, P.EVALS_READ, query=("limit",)),
    admin_route("GET", BASE + "/online", online_status),  # admins: every tenant's counts
    admin_route("GET", RUN, get_run, P.EVALS_READ),
    admin_route("GET", RUN + "/results", results, P.EVALS_READ, query=("target",)),
    admin_route("GET", RUN + "/compare", compare_runs, P.EVALS_READ, query=("base",)),
    admin_route("POST", RUN + "/cancel", cancel, P.EVALS_RUN),
    admin_route("POST", RUN + "/resume", resume, P.EVALS_RUN),
]
