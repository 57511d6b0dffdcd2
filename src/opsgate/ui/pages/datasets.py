"""Datasets: the datasets in scope, a form to build one from a review queue or from scored
traffic, one dataset's versions and rows, and its exports as downloads.

Everything goes through `DatasetService` (feedback/datasets/service.py), as the admin API does:
the same scope, versions, stored-bodies check and audited, redacted exports.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from opsgate.access.permissions import Permission, require
from opsgate.errors import BadRequestError, OpsgateError
from opsgate.feedback.datasets.formats import FORMATS
from opsgate.feedback.datasets.requests import DatasetCreate
from opsgate.feedback.datasets.service import DatasetService
from opsgate.feedback.review.service import ReviewService
from opsgate.feedback.selection import parse_condition
from opsgate.ui.forms import field
from opsgate.ui.registry import Page
from opsgate.ui.visit import Visit, view
from opsgate.web.audit import actor_of

P = Permission
FORM_FIELDS = ("name", "description", "from_queue", "since", "model", "where", "corrected")


def _service(visit: Visit) -> DatasetService:
    service: DatasetService = visit.gateway.datasets
    return service


async def _list(visit: Visit, *, status: int = 200, **extra: Any) -> Response:
    listed = await _service(visit).listed(visit.principal)
    queues = []
    if visit.may(P.TRACES_REVIEW):
        review: ReviewService = visit.gateway.review
        queues = await review.visible(visit.principal)
    context = {
        "datasets": listed,
        "queues": queues,
        "form": dict.fromkeys(FORM_FIELDS, ""),
        "error": None,
    }
    return visit.render("datasets.html", {**context, **extra}, status=status)


@view(P.DATASETS_READ)
async def datasets_page(visit: Visit) -> Response:
    return await _list(visit)


def _create_body(visit: Visit) -> DatasetCreate:
    """The dataset the form describes: from a queue, and/or one filter over traffic (plus
    every corrected answer of that model, when asked)."""
    form = visit.form
    body: dict[str, Any] = {"name": field(form, "name") or ""}
    if field(form, "description"):
        body["description"] = field(form, "description")
    if field(form, "from_queue"):
        body["from_queue"] = field(form, "from_queue")
    traffic: dict[str, Any] = {}
    for name in ("since", "model"):
        if field(form, name):
            traffic[name] = field(form, name)
    where = field(form, "where")
    if where:
        traffic["scores"] = [
            parse_condition(part, "where").model_dump(exclude_none=True)
            for part in where.split(",")
            if part.strip()
        ]
    filters = [traffic] if traffic else []
    if form.get("corrected"):
        corrected: dict[str, Any] = {"corrected": True}
        if "model" in traffic:
            corrected["model"] = traffic["model"]
        filters.append(corrected)
    if filters:
        body["from_traces"] = filters
    try:
        return DatasetCreate.model_validate(body)
    except ValueError as exc:
        raise BadRequestError(f"The dataset was not created: {exc}") from None


@view(P.DATASETS_MANAGE, audit="datasets.create")
async def create_dataset(visit: Visit) -> Response:
    echoed = {name: visit.form.get(name, "") for name in FORM_FIELDS}
    try:
        result = await _service(visit).create(
            visit.principal, _create_body(visit), actor_of(visit.request.scope)
        )
    except OpsgateError as exc:
        if exc.status >= 500:
            raise
        return await _list(visit, status=exc.status, form=echoed, error=exc.message)
    root = visit.request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/datasets/{result.dataset.id}?made=1", status_code=303)


@view(P.DATASETS_READ)
async def dataset_page(visit: Visit) -> Response:
    service = _service(visit)
    info, count, versions = await service.show(visit.principal, visit.request.path_params["ref"])
    _, _, rows = await service.rows(
        visit.principal, info.id, version=None, after=None, limit=50, content=False, actor=""
    )
    return visit.render(
        "dataset.html",
        {
            "d": info,
            "count": count,
            "versions": versions,
            "rows": [row for row, _ in rows],
            "formats": FORMATS,
            "made": visit.request.query_params.get("made") == "1",
            "may_export": visit.may(P.DATASETS_READ, P.TRACES_READ_BODIES),
        },
    )


@view(P.DATASETS_READ, P.TRACES_READ_BODIES)
async def export(visit: Visit) -> Response:
    params = visit.request.query_params
    redact = params.get("redact", "true") != "false"
    if not redact:
        require(visit.principal, P.DATASETS_MANAGE)
    version = params.get("version")
    if version is not None and not version.isdigit():
        raise BadRequestError("version must be a number.")
    info, run, rows = await _service(visit).export(
        visit.principal,
        visit.request.path_params["ref"],
        fmt=params.get("format") or "openai-chat",
        version=int(version) if version else None,
        redact=redact,
        metric=params.get("metric") or None,
        actor=actor_of(visit.request.scope),
    )
    name = f"{info.name}-v{run.report.version}-{run.report.format}.jsonl"
    headers = {
        "content-disposition": f'attachment; filename="{name}"',
        "x-opsgate-export-id": run.report.id,
        "x-opsgate-dataset-rows": str(rows),
        "cache-control": "no-store",
    }
    return StreamingResponse(run.lines(), media_type="application/jsonl", headers=headers)


PAGE = Page(
    "datasets",
    "Datasets",
    "/datasets",
    any_of=(P.DATASETS_READ,),
    routes=(
        Route("/datasets", datasets_page, methods=["GET"]),
        Route("/datasets", create_dataset, methods=["POST"]),
        Route("/datasets/{ref:str}", dataset_page, methods=["GET"]),
        Route("/datasets/{ref:str}/export", export, methods=["GET"]),
    ),
    order=27,
)
