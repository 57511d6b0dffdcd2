"""Admin API of distillation: `/admin/v1/tuning/distill` (start, list) and
`/admin/v1/tuning/distill/{id}` (read: stage, counts, the comparison table).

Thin handlers over `DistillService`. Starting needs `tuning:manage` (it trains an adapter),
`datasets:read` (it reads a dataset's rows), `datasets:manage` (it makes the distilled
dataset) and `models:call` (the teacher is called with the caller's own key, through this
gateway: routed, traced, costed and budgeted as the caller's traffic). A teacher the gateway
does not serve is a 404, one the caller's key may not call a 403, before anything starts.
"""

from __future__ import annotations

from starlette.responses import Response

from opsgate.access.permissions import Permission
from opsgate.api.responses import JSONResponse
from opsgate.errors import BadRequestError
from opsgate.pipeline.stages.authenticate import check_model
from opsgate.tuning.distill import DistillService
from opsgate.tuning.distill_requests import DistillCreate
from opsgate.web.admin import AdminCall, admin_route

P = Permission
BASE = "/admin/v1/tuning/distill"
MAX_LIMIT = 1000


def _distill(call: AdminCall) -> DistillService:
    service: DistillService = call.gateway.distill
    return service


async def start(call: AdminCall) -> Response:
    """Start a distillation: teacher answers, filtered, a dataset, a student job, a comparison"""
    body: DistillCreate = call.body
    call.gateway.runtime.router.group(body.teacher)  # 404 for a model the gateway does not serve
    check_model(call.who, body.teacher)  # 403 for one the caller's key may not call
    record = await _distill(call).start(call.who, body, call.caller_key, call.own_url, call.actor)
    call.audited()
    return JSONResponse(record, status_code=201)


async def list_all(call: AdminCall) -> Response:
    """Distillations, newest first (`limit`)"""
    raw = call.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequestError(
            f"limit must be an integer from 1 to {MAX_LIMIT}",
            code="invalid_parameter",
            param="limit",
        )
    rows = await _distill(call).listed(call.who, int(raw))
    return JSONResponse({"object": "list", "data": rows})


async def get_one(call: AdminCall) -> Response:
    """One distillation: its stage, teacher counts, dataset, job and comparison table"""
    return JSONResponse(await _distill(call).get(call.who, call.path("distill_id")))


routes = [
    admin_route(
        "POST",
        BASE,
        start,
        P.TUNING_MANAGE,
        P.DATASETS_READ,
        P.DATASETS_MANAGE,
        P.MODELS_CALL,
        body=DistillCreate,
    ),
    admin_route("GET", BASE, list_all, P.TUNING_READ, query=("limit",)),
    admin_route("GET", BASE + "/{distill_id}", get_one, P.TUNING_READ),
]
