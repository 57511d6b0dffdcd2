"""Tuning: LoRA jobs (status, progress, times, CPU seconds, validation loss before and after)
and the adapter registry with its lineage, dataset version → job → adapter → the experiments
that put the adapter in front of traffic (and the models serving it); per job its loss curve,
the scorer evaluation base vs adapter when the job made one, its data card, its error, its log
(the worker's output, read by `TuningService.logs` as `GET .../logs` reads it) and
cancel/resume for `tuning:manage`.

Everything goes through `TuningService`, as the admin API does: the same team scope (another
team's job is a 404), the same state rules (409 from the wrong state) and audit entries. While
a job is queued or running its page polls a fragment (`/live`, htmx) that answers 286 once the
job is final, which stops the polling.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from opsgate.access.permissions import Permission, is_global
from opsgate.errors import BadRequestError, NotFoundError
from opsgate.experiments.model import Experiment
from opsgate.experiments.service import ExperimentService
from opsgate.feedback.datasets.service import DatasetService
from opsgate.tuning.service import TuningService
from opsgate.ui.registry import Page
from opsgate.ui.tuning_views import (
    FINAL,
    distillation,
    evaluation,
    loss_chart,
    mentions,
    progress,
    served_by,
)
from opsgate.ui.visit import Visit, view
from opsgate.web.audit import actor_of

P = Permission
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
LOG_LINES = 200
"""The newest log lines a job's page shows (the job keeps up to 500: `opsgate tuning logs`)."""
STOP_POLLING = 286
"""htmx stops polling an element whose request is answered with this status."""


def _service(visit: Visit) -> TuningService:
    service: TuningService = visit.gateway.tuning
    return service


async def _dataset_names(visit: Visit) -> dict[str, str]:
    """Dataset id → name for the datasets the visitor may open (linked); none without
    `datasets:read` (the page then shows the id, unlinked)."""
    datasets: DatasetService | None = visit.gateway.datasets
    if datasets is None or not visit.may(P.DATASETS_READ):
        return {}
    found = await datasets.store.in_scope(datasets.owners(visit.principal))
    return {info.id: info.name for info in found}


async def _experiments(visit: Visit) -> list[Experiment]:
    """The experiments the visitor may see (as on the Experiments page)."""
    if not visit.may(P.EXPERIMENTS_READ):
        return []
    service: ExperimentService = visit.gateway.experiments
    await service.refresh()
    team = visit.principal.team_id or ""
    return [
        e for e in service.experiments.values() if is_global(visit.principal) or e.team_id == team
    ]


def _status(visit: Visit) -> str | None:
    status = visit.request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequestError(f"status must be one of {', '.join(STATUSES)}; got {status!r}.")
    return status


@view(P.TUNING_READ)
async def tuning_page(visit: Visit) -> Response:
    status = _status(visit)
    service = _service(visit)
    jobs = await service.jobs(visit.principal, status=status, limit=200)
    adapters = await service.adapters(visit.principal)
    experiments = await _experiments(visit)
    groups = visit.gateway.model_groups
    used_by = {
        a["name"]: [e.name for e in experiments if mentions(e, a["name"], groups)] for a in adapters
    }
    context = {
        "jobs": [{**j, "progress": progress(j)} for j in jobs],
        "adapters": adapters,
        "used_by": used_by,
        "served": {a["name"]: served_by(a["name"], groups) for a in adapters},
        "datasets": await _dataset_names(visit),
        "statuses": STATUSES,
        "status": status or "",
    }
    return visit.render("tuning.html", context)


async def _job_context(visit: Visit) -> dict[str, Any]:
    service = _service(visit)
    job = await service.job(visit.principal, visit.request.path_params["job_id"])
    adapter = None
    if job["status"] == "succeeded":
        try:
            adapter = await service.adapter(visit.principal, job["adapter"])
        except NotFoundError:  # deleted since; the job and its curve stay
            adapter = None
        if adapter is not None and adapter["job_id"] != job["id"]:
            adapter = None  # the name was registered again by a later job
    used_by: list[str] = []
    served: list[str] = []
    if adapter is not None:
        groups = visit.gateway.model_groups
        used_by = [
            e.name for e in await _experiments(visit) if mentions(e, adapter["name"], groups)
        ]
        served = served_by(adapter["name"], groups)
    log = await service.logs(visit.principal, job["id"], 0)
    return {
        "j": {**job, "progress": progress(job)},
        "active": job["status"] not in FINAL,
        "chart": loss_chart(job),
        "evaluation": evaluation(job.get("metrics")),
        "distillation": distillation(job.get("metrics")),
        "adapter": adapter,
        "used_by": used_by,
        "served": served,
        "log": log["data"][-LOG_LINES:],
        "log_first": log["first"],
        "datasets": await _dataset_names(visit),
        "may_manage": visit.may(P.TUNING_MANAGE),
        "done": visit.request.query_params.get("done"),
    }


@view(P.TUNING_READ)
async def job_page(visit: Visit) -> Response:
    return visit.render("tuning_job.html", await _job_context(visit))


@view(P.TUNING_READ)
async def job_live(visit: Visit) -> Response:
    """The part of a job's page that changes while it runs (an htmx fragment)."""
    context = await _job_context(visit)
    status = 200 if context["active"] else STOP_POLLING
    return visit.render("tuning_live.html", context, status=status)


@view(P.TUNING_MANAGE)
async def change(visit: Visit) -> Response:
    job_id = visit.request.path_params["job_id"]
    action = visit.request.path_params["action"]
    actor = actor_of(visit.request.scope)
    if action == "cancel":
        await _service(visit).cancel(visit.principal, job_id, actor)
    elif action == "resume":
        await _service(visit).resume(visit.principal, job_id, actor)
    else:
        raise NotFoundError(f"There is no action {action!r}.")
    root = visit.request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/tuning/jobs/{job_id}?done={action}", status_code=303)


PAGE = Page(
    "tuning",
    "Tuning",
    "/tuning",
    any_of=(P.TUNING_READ,),
    routes=(
        Route("/tuning", tuning_page, methods=["GET"]),
        Route("/tuning/jobs/{job_id}", job_page, methods=["GET"]),
        Route("/tuning/jobs/{job_id}/live", job_live, methods=["GET"]),
        Route("/tuning/jobs/{job_id}/{action}", change, methods=["POST"]),
    ),
    order=39,
)
