"""Admin API of the experiments (`/admin/v1/experiments`): create, list, get with statistics,
pause, resume, stop, promote.

Thin handlers over `ExperimentService`. An experiment belongs to a team (its creator's; admins
name one in `traffic.team_id`): callers outside it get 404 as for an unknown name. Every state
change writes an `experiments.*` audit entry (the service writes it); promoting a prompt variant
moves its label through the prompt registry, which checks `prompts:promote` for `production`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from opsgate.access.permissions import Permission, is_global
from opsgate.api.responses import JSONResponse
from opsgate.config.experiments import VARIANT_NAME, ExperimentConfig
from opsgate.errors import BadRequestError
from opsgate.experiments.errors import ExperimentNotFoundError
from opsgate.experiments.model import Experiment, Status
from opsgate.experiments.report import experiment_json
from opsgate.experiments.service import ExperimentService
from opsgate.web.admin import AdminCall, Handler, admin_route

P = Permission
BASE = "/admin/v1/experiments"


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str = Field(pattern=VARIANT_NAME)


def _service(call: AdminCall) -> ExperimentService:
    service: ExperimentService = call.gateway.experiments
    return service


def _visible(call: AdminCall, exp: Experiment) -> bool:
    return is_global(call.who) or exp.team_id == (call.who.team_id or "")


async def _find(call: AdminCall) -> Experiment:
    service = _service(call)
    await service.refresh()
    name = call.path("name")
    exp = service.experiments.get(name)
    if exp is None or not _visible(call, exp):
        raise ExperimentNotFoundError(f"no experiment named {name!r}", param="name")
    return exp


async def create(call: AdminCall) -> Response:
    """Create an experiment (it starts running at once)"""
    spec: ExperimentConfig = call.body
    team = spec.traffic.team_id
    if not is_global(call.who):
        own = call.who.team_id or ""
        if team not in ("", own):
            raise BadRequestError("traffic.team_id must be your own team", param="traffic.team_id")
        team = own
        spec = spec.model_copy(update={"traffic": spec.traffic.model_copy(update={"team_id": own})})
    exp = await _service(call).create(spec, team_id=team, actor=call.actor, who=call.who)
    call.audited()
    return JSONResponse(experiment_json(exp), status_code=201)


async def list_experiments(call: AdminCall) -> Response:
    """Experiments in your scope, newest last, with their state and decision"""
    service = _service(call)
    await service.refresh()
    status = call.query.get("status")
    data = [
        experiment_json(e)
        for e in service.experiments.values()
        if _visible(call, e) and (status is None or e.status == status)
    ]
    return JSONResponse({"object": "list", "data": data})


async def get_experiment(call: AdminCall) -> Response:
    """One experiment: per-variant statistics, the metric over time, allocation, decision log"""
    exp = await _find(call)
    return JSONResponse(await _service(call).report(exp.name))


def _transition(to: Status, doc: str) -> Handler:
    async def handler(call: AdminCall) -> Response:
        exp = await _find(call)
        done = await _service(call).set_status(exp.name, to, actor=call.actor)
        call.audited()
        return JSONResponse(experiment_json(done))

    handler.__doc__ = doc
    handler.__name__ = f"experiment_{to}"
    return handler


async def promote(call: AdminCall) -> Response:
    """Promote a variant: move the prompt label to its version, or serve it to all the traffic"""
    exp = await _find(call)
    body: PromoteBody = call.body
    done = await _service(call).promote(exp.name, body.variant, actor=call.actor, who=call.who)
    call.audited()
    return JSONResponse(experiment_json(done))


_ONE = f"{BASE}/{{name}}"
routes = [
    admin_route("POST", BASE, create, P.EXPERIMENTS_MANAGE, body=ExperimentConfig),
    admin_route("GET", BASE, list_experiments, P.EXPERIMENTS_READ, query=("status",)),
    admin_route("GET", _ONE, get_experiment, P.EXPERIMENTS_READ),
    admin_route(
        "POST",
        f"{_ONE}/pause",
        _transition("paused", "Pause: no new units enter, requests get no variant"),
        P.EXPERIMENTS_MANAGE,
    ),
    admin_route(
        "POST",
        f"{_ONE}/resume",
        _transition("running", "Resume a paused experiment"),
        P.EXPERIMENTS_MANAGE,
    ),
    admin_route(
        "POST",
        f"{_ONE}/stop",
        _transition("stopped", "Stop for good: the traffic goes back to what it was"),
        P.EXPERIMENTS_MANAGE,
    ),
    admin_route("POST", f"{_ONE}/promote", promote, P.EXPERIMENTS_MANAGE, body=PromoteBody),
]
