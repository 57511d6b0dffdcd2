"""Admin API of drift (`/admin/v1/drift`): monitors, their results, running them now, and the
proposals a monitor entering drift leaves.

Thin handlers over `DriftService`. Monitors are scoped by team: an admin sees every monitor; a
team admin or viewer sees the monitors of its team (created by its team, or a config monitor
whose scope names the team), and a team admin's new monitor is scoped to its team. A monitor
outside the caller's scope is a 404, as for an unknown name. Example prompts of a result are
shown only with `traces:read_bodies`, and each read is audited. Accepting an `eval_run`
proposal starts its eval run as `POST /admin/v1/evals` would, with the caller's own key, so it
also needs `evals:run`, `datasets:read` and `traces:read_bodies`, and a target model the
gateway serves.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from opsgate.access.permissions import Permission, require
from opsgate.api.responses import JSONResponse
from opsgate.config.drift import MonitorConfig
from opsgate.drift import DriftService, Monitor
from opsgate.drift.features import last_user_text
from opsgate.drift.proposals import Credentials
from opsgate.errors import BadRequestError, NotFoundError
from opsgate.web.admin import AdminCall, admin_route
from opsgate.web.queries import parse_time

P = Permission
BASE = "/admin/v1/drift"
MONITOR = BASE + "/monitors/{name}"
PROPOSAL = BASE + "/proposals/{proposal_id}"
MAX_LIMIT = 1000


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    monitors: list[str] | None = Field(default=None, description="default: every monitor")


def _drift(call: AdminCall) -> DriftService:
    service: DriftService = call.gateway.drift
    return service


def _limit(raw: str | None, default: int = 100) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequestError(
            f"limit must be an integer from 1 to {MAX_LIMIT}",
            code="invalid_parameter",
            param="limit",
        )
    return int(raw)


def _team(m: Monitor) -> str | None:
    return m.team_id or m.config.scope.team


def _visible(call: AdminCall, monitors: list[Monitor]) -> list[Monitor]:
    scope = call.scope
    if not scope:
        return monitors
    team = scope.get("team_id")
    return [m for m in monitors if team is not None and _team(m) == team]


async def _monitor(call: AdminCall) -> Monitor:
    name = call.path("name")
    found = await _drift(call).monitor(name)
    if found is None or not _visible(call, [found]):
        raise NotFoundError(f"no drift monitor {name!r}", code="monitor_not_found")
    return found


def result_json(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"object": "drift.result", **row}


def monitor_json(m: Monitor, latest: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "object": "drift.monitor",
        **m.config.model_dump(mode="json"),
        "source": m.source,
        "team_id": m.team_id,
        "created_by": m.created_by,
        "state": latest["state"] if latest else None,
        "latest": result_json(latest),
    }


async def overview(call: AdminCall) -> Response:
    """Each visible monitor's state and how many proposals are open (the Overview badge)"""
    monitors = _visible(call, await _drift(call).monitors())
    latest = await _drift(call).store.latest()
    states: dict[str, int] = {}
    for m in monitors:
        state = (latest.get(m.config.name) or {}).get("state") or "pending"
        states[state] = states.get(state, 0) + 1
    names = {m.config.name for m in monitors}
    open_ = [p for p in await _drift(call).store.proposals(status="open") if p["monitor"] in names]
    return JSONResponse(
        {
            "object": "drift.overview",
            "monitors": len(monitors),
            "states": states,
            "open_proposals": len(open_),
        }
    )


async def list_monitors(call: AdminCall) -> Response:
    """Drift monitors (config file and API) with their latest result"""
    latest = await _drift(call).store.latest()
    monitors = _visible(call, await _drift(call).monitors())
    data = [monitor_json(m, latest.get(m.config.name)) for m in monitors]
    return JSONResponse({"object": "list", "data": data})


async def create_monitor(call: AdminCall) -> Response:
    """Create a drift monitor; 400 when a fixed reference holds no traffic, 409 on a taken name"""
    spec: MonitorConfig = call.body
    team = call.scope.get("team_id")
    if call.scope and team is None:
        raise BadRequestError("only admins and team admins create drift monitors")
    if team is not None:
        if spec.scope.team not in (None, team):
            raise BadRequestError(
                f"scope.team must be your team {team!r}", code="outside_scope", param="scope.team"
            )
        spec = spec.model_copy(update={"scope": spec.scope.model_copy(update={"team": team})})
    created = await _drift(call).create(spec, team, call.actor)
    return JSONResponse(monitor_json(created, None), status_code=201)


async def get_monitor(call: AdminCall) -> Response:
    """One drift monitor with its recent results (newest first)"""
    m = await _monitor(call)
    results = await _drift(call).store.results(m.config.name, limit=_limit(call.query.get("limit")))
    body = monitor_json(m, results[0] if results else None)
    body["results"] = [result_json(r) for r in results]
    return JSONResponse(body)


async def delete_monitor(call: AdminCall) -> Response:
    """Delete a monitor created through the API (its results stay)"""
    m = await _monitor(call)
    await _drift(call).delete(m.config.name)
    return JSONResponse({"object": "drift.monitor.deleted", "name": m.config.name})


async def monitor_results(call: AdminCall) -> Response:
    """A monitor's results, newest first (`since`: ISO-8601, epoch seconds or an age)"""
    m = await _monitor(call)
    rows = await _drift(call).store.results(
        m.config.name, limit=_limit(call.query.get("limit")), since=_since(call)
    )
    return JSONResponse({"object": "list", "data": [result_json(r) for r in rows]})


def _since(call: AdminCall) -> float | None:
    since = call.query.get("since")
    return parse_time(since, time.time(), "since") if since else None


async def run_monitors(call: AdminCall) -> Response:
    """Evaluate monitors now (all visible ones, or those named); their results"""
    body: RunBody = call.body
    visible = {m.config.name for m in _visible(call, await _drift(call).monitors())}
    names = body.monitors if body.monitors is not None else sorted(visible)
    unknown = [n for n in names if n not in visible]
    if unknown:
        raise NotFoundError(f"no drift monitor {unknown[0]!r}", code="monitor_not_found")
    rows = await _drift(call).run(names)
    return JSONResponse({"object": "list", "data": [result_json(r) for r in rows]})


async def _proposal(call: AdminCall) -> dict[str, Any]:
    pid = call.path("proposal_id")
    found = await _drift(call).store.proposal(pid)
    if found is None or (call.scope and found["team_id"] != call.scope.get("team_id")):
        raise NotFoundError(f"no drift proposal {pid!r}", code="proposal_not_found")
    return found


def proposal_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"object": "drift.proposal", **row}


async def list_proposals(call: AdminCall) -> Response:
    """Proposals, newest first (`status`: open, accepted, dismissed; `monitor`)"""
    status = call.query.get("status")
    if status not in (None, "open", "accepted", "dismissed"):
        raise BadRequestError(
            "status is open, accepted or dismissed", code="invalid_parameter", param="status"
        )
    rows = await _drift(call).store.proposals(
        status=status, monitor=call.query.get("monitor"), limit=_limit(call.query.get("limit"))
    )
    team = call.scope.get("team_id")
    if call.scope:
        rows = [r for r in rows if team is not None and r["team_id"] == team]
    return JSONResponse({"object": "list", "data": [proposal_json(r) for r in rows]})


async def _decide(call: AdminCall, accept: bool) -> Response:
    service = _drift(call)
    if service.proposals is None:
        raise BadRequestError("proposals are not available on this gateway")
    found = await _proposal(call)
    credentials = None
    if accept and found["kind"] == "eval_run" and found["status"] == "open":
        for needed in (P.EVALS_RUN, P.DATASETS_READ, P.TRACES_READ_BODIES):
            require(call.who, needed)
        model = await service.proposals.target_model(found["detail"])
        if model is not None and model not in call.gateway.model_groups:
            raise BadRequestError(
                f"the eval run's target model {model!r} is not served here", code="unknown_target"
            )
        credentials = Credentials(call.caller_key, call.own_url)
    done = await service.proposals.decide(call.who, found, accept, call.actor, credentials)
    call.audited()
    return JSONResponse(proposal_json(done))


async def accept_proposal(call: AdminCall) -> Response:
    """Accept a proposal: create its dataset (and start its eval run), or refresh the
    monitor's reference (audited)"""
    return await _decide(call, True)


async def dismiss_proposal(call: AdminCall) -> Response:
    """Dismiss a proposal (audited)"""
    return await _decide(call, False)


async def result_examples(call: AdminCall) -> Response:
    """The example prompts of a result's top clusters (an audited read of bodies)"""
    row = await _drift(call).store.result(call.path("result_id"))
    if row is None:
        raise NotFoundError("no drift result", code="result_not_found")
    m = await _drift(call).monitor(row["monitor"])
    if m is None or not _visible(call, [m]):
        raise NotFoundError("no drift result", code="result_not_found")
    reader = call.gateway.traces
    out = []
    for cluster in (row["detail"] or {}).get("clusters", [])[:5]:
        texts = list(cluster.get("example_texts") or [])
        for trace_id in cluster.get("examples", []):
            record = await reader.get(trace_id) if reader is not None else None
            if record is None or not call.sees(
                team_id=record.team_id, user_id=record.user_id, key_id=record.key_id
            ):
                continue
            request, _ = await call.gateway.bodies.read_or_refuse(record, call.actor)
            text = last_user_text(_loads(request)) if request else None
            if text:
                texts.append(text[:500])
        out.append({"cluster": cluster["cluster"], "side": cluster.get("side"), "texts": texts})
    return JSONResponse({"object": "list", "data": out})


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


routes = [
    admin_route("GET", BASE, overview, P.DRIFT_READ),
    admin_route("GET", BASE + "/monitors", list_monitors, P.DRIFT_READ),
    admin_route("POST", BASE + "/monitors", create_monitor, P.DRIFT_MANAGE, body=MonitorConfig),
    admin_route("GET", MONITOR, get_monitor, P.DRIFT_READ, query=("limit",)),
    admin_route("DELETE", MONITOR, delete_monitor, P.DRIFT_MANAGE),
    admin_route(
        "GET", MONITOR + "/results", monitor_results, P.DRIFT_READ, query=("limit", "since")
    ),
    admin_route("POST", BASE + "/run", run_monitors, P.DRIFT_MANAGE, body=RunBody),
    admin_route(
        "GET",
        BASE + "/proposals",
        list_proposals,
        P.DRIFT_READ,
        query=("status", "monitor", "limit"),
    ),
    admin_route("POST", PROPOSAL + "/accept", accept_proposal, P.DRIFT_MANAGE),
    admin_route("POST", PROPOSAL + "/dismiss", dismiss_proposal, P.DRIFT_MANAGE),
    admin_route(
        "GET",
        BASE + "/results/{result_id}/examples",
        result_examples,
        P.DRIFT_READ,
        P.TRACES_READ_BODIES,
    ),
]
