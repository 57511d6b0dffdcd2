"""Admin API of tuning: `/admin/v1/tuning/jobs` (create, list, get, cancel, resume) and
`/admin/v1/adapters` (list, get, delete, promote, demote).

Thin handlers over `TuningService`. Jobs and adapters are scoped by team: an admin sees all,
a team admin or viewer those of its team; one outside the caller's scope is a 404, as for an
unknown id. Creating a job checks everything before it is queued (400 for a bad dataset, base
or settings; 409 for a taken adapter name); cancelling a finished job is a 409. The service
writes the audit entries (the runner writes the job's own state changes).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from opsgate.access.permissions import Permission
from opsgate.api.responses import JSONResponse
from opsgate.errors import BadRequestError
from opsgate.tuning.requests import JobCreate
from opsgate.tuning.rollout import PromoteRequest
from opsgate.tuning.service import TuningService
from opsgate.web.admin import AdminCall, admin_route

P = Permission
JOBS = "/admin/v1/tuning/jobs"
JOB = JOBS + "/{job_id}"
ADAPTERS = "/admin/v1/adapters"
ADAPTER = ADAPTERS + "/{name}"
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
MAX_LIMIT = 1000


def _tuning(call: AdminCall) -> TuningService:
    service: TuningService = call.gateway.tuning
    return service


def job_json(row: dict[str, Any], *, losses: bool = True) -> dict[str, Any]:
    out = {
        "object": "tuning.job",
        **{k: v for k, v in row.items() if k not in ("losses", "cancel_requested")},
    }
    out["cancel_requested"] = bool(row["cancel_requested"])
    out["tainted"] = row["tainted_at"] is not None
    if losses:
        out["losses"] = row["losses"]
    return out


def adapter_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"object": "adapter", **row, "tainted": row["tainted_at"] is not None}


def _limit(raw: str | None) -> int:
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequestError(
            f"limit must be an integer from 1 to {MAX_LIMIT}",
            code="invalid_parameter",
            param="limit",
        )
    return int(raw)


async def create_job(call: AdminCall) -> Response:
    """Start a LoRA job on a dataset version (checked first: 400 bad input, 409 name taken)"""
    body: JobCreate = call.body
    job = await _tuning(call).create(call.who, body, call.actor)
    call.audited()
    return JSONResponse(job_json(job), status_code=201)


async def list_jobs(call: AdminCall) -> Response:
    """Tuning jobs, newest first (`status`; `limit`), without their loss curves"""
    status = call.query.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequestError(
            f"status is one of {', '.join(STATUSES)}", code="invalid_parameter", param="status"
        )
    rows = await _tuning(call).jobs(call.who, status=status, limit=_limit(call.query.get("limit")))
    return JSONResponse({"object": "list", "data": [job_json(r, losses=False) for r in rows]})


async def get_job(call: AdminCall) -> Response:
    """One tuning job with its status, progress, loss per step and metrics"""
    return JSONResponse(job_json(await _tuning(call).job(call.who, call.path("job_id"))))


async def job_logs(call: AdminCall) -> Response:
    """The job's log lines numbered above `after` (its last 500: worker output and events), to
    poll: ask again with `after` set to the answer's `last`"""
    raw = call.query.get("after", "0")
    if not raw.isdigit():
        raise BadRequestError(
            "after must be a non-negative integer", code="invalid_parameter", param="after"
        )
    return JSONResponse(await _tuning(call).logs(call.who, call.path("job_id"), int(raw)))


async def cancel_job(call: AdminCall) -> Response:
    """Cancel a queued job, or stop a running one at its next step (checkpoint kept; 409 when
    finished)"""
    job = await _tuning(call).cancel(call.who, call.path("job_id"), call.actor)
    call.audited()
    return JSONResponse(job_json(job))


async def resume_job(call: AdminCall) -> Response:
    """Queue a cancelled or failed job again, to continue from its checkpoint (409 otherwise)"""
    job = await _tuning(call).resume(call.who, call.path("job_id"), call.actor)
    call.audited()
    return JSONResponse(job_json(job))


async def list_adapters(call: AdminCall) -> Response:
    """Registered adapters with their base, lineage (dataset version, job) and metrics"""
    rows = await _tuning(call).adapters(call.who)
    return JSONResponse({"object": "list", "data": [adapter_json(r) for r in rows]})


async def get_adapter(call: AdminCall) -> Response:
    """One adapter"""
    return JSONResponse(adapter_json(await _tuning(call).adapter(call.who, call.path("name"))))


async def delete_adapter(call: AdminCall) -> Response:
    """Unregister an adapter and delete its weights (its job stays; 409 while promoted)"""
    name = call.path("name")
    await _tuning(call).adapter(call.who, name)  # 404 first for another team's or none
    await call.gateway.rollout.refuse_if_promoted(name)
    row = await _tuning(call).delete_adapter(call.who, name, call.actor)
    call.audited()
    return JSONResponse({"object": "adapter.deleted", "name": row["name"]})


async def promote_adapter(call: AdminCall) -> Response:
    """Serve an adapter on a model's deployments from now on, for every caller or one team
    (stored, audited; 409 for a tainted adapter or one on another base)"""
    body: PromoteRequest = call.body
    adapter = await _tuning(call).adapter(call.who, call.path("name"))
    gateway = call.gateway
    promotion = await gateway.rollout.promote(
        call.who,
        adapter,
        gateway.runtime.config,
        model=body.model,
        team=body.team,
        actor=call.actor,
    )
    call.audited()
    return JSONResponse(promotion.to_json())


async def demote_adapter(call: AdminCall) -> Response:
    """Take back an adapter's promotion on a model (for everyone or one team): the config
    file's adapter serves again (audited; 404 when not promoted there)"""
    body: PromoteRequest = call.body
    adapter = await _tuning(call).adapter(call.who, call.path("name"))
    promotion = await call.gateway.rollout.demote(
        call.who, adapter["name"], model=body.model, team=body.team, actor=call.actor
    )
    call.audited()
    return JSONResponse({**promotion.to_json(), "object": "adapter.promotion.deleted"})


routes = [
    admin_route("POST", JOBS, create_job, P.TUNING_MANAGE, P.DATASETS_READ, body=JobCreate),
    admin_route("GET", JOBS, list_jobs, P.TUNING_READ, query=("status", "limit")),
    admin_route("GET", JOB, get_job, P.TUNING_READ),
    admin_route("GET", JOB + "/logs", job_logs, P.TUNING_READ, query=("after",)),
    admin_route("POST", JOB + "/cancel", cancel_job, P.TUNING_MANAGE),
    admin_route("POST", JOB + "/resume", resume_job, P.TUNING_MANAGE),
    admin_route("GET", ADAPTERS, list_adapters, P.TUNING_READ),
    admin_route("GET", ADAPTER, get_adapter, P.TUNING_READ),
    admin_route("DELETE", ADAPTER, delete_adapter, P.TUNING_MANAGE),
    admin_route(
        "POST", ADAPTER + "/promote", promote_adapter, P.TUNING_MANAGE, body=PromoteRequest
    ),
    admin_route("POST", ADAPTER + "/demote", demote_adapter, P.TUNING_MANAGE, body=PromoteRequest),
]
