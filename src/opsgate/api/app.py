"""The HTTP API as parts for the app factory (`opsgate.app.create_app`): the route table, the
middleware stack and the exception handlers, which answer OpenAI-shaped JSON.

Each route module owns its routes (`routes = [...]`); this table only lists the modules, in
the order Starlette tries them. The dashboard is not here: the app mounts it beside the API.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ExceptionHandler

from opsgate.api import feedback, health, openai_routes
from opsgate.api import prompts as prompt_routes
from opsgate.api.access_middleware import AccessMiddleware
from opsgate.api.admin import access as admin_access
from opsgate.api.admin import alerts as admin_alerts
from opsgate.api.admin import cache as admin_cache
from opsgate.api.admin import compliance as admin_compliance
from opsgate.api.admin import datasets as admin_datasets
from opsgate.api.admin import distill as admin_distill
from opsgate.api.admin import drift as admin_drift
from opsgate.api.admin import evals as admin_evals
from opsgate.api.admin import experiments as admin_experiments
from opsgate.api.admin import feedback as admin_feedback
from opsgate.api.admin import knowledge as admin_knowledge
from opsgate.api.admin import prompts as admin_prompts
from opsgate.api.admin import review as admin_review
from opsgate.api.admin import runtime as admin_runtime
from opsgate.api.admin import traces as admin_traces
from opsgate.api.admin import tuning as admin_tuning
from opsgate.api.audit_middleware import AuditMiddleware
from opsgate.api.auth_failures import AuthFailureMiddleware
from opsgate.api.chat_endpoint import HotPath
from opsgate.api.middleware import TraceIdMiddleware
from opsgate.api.responses import (
    error_response,
    handle_opsgate_error,
    handle_outage,
    handle_unexpected,
)
from opsgate.errors import NotFoundError, OpsgateError
from opsgate.web.outage import OUTAGES


async def not_found(request: Request, exc: Exception) -> Response:
    """404 `unknown_url` and 405 `method_not_allowed`, as OpenAI-shaped JSON."""
    status = getattr(exc, "status_code", 404)
    if status == 405:
        err = OpsgateError(f"Method {request.method} is not allowed on {request.url.path}.")
        err.status, err.type, err.code = 405, "invalid_request_error", "method_not_allowed"
        return error_response(err)
    return error_response(NotFoundError(f"Unknown path {request.url.path}.", code="unknown_url"))


routes: list[BaseRoute] = [
    *openai_routes.routes,
    *health.routes,
    *admin_runtime.routes,
    *feedback.routes,
    *admin_traces.routes,
    *admin_feedback.routes,
    *admin_review.routes,
    *admin_datasets.routes,
    *admin_evals.routes,
    *admin_drift.routes,
    *admin_tuning.routes,
    *admin_distill.routes,
    *admin_access.routes,
    *admin_cache.routes,
    *admin_compliance.routes,
    *admin_alerts.routes,
    *admin_prompts.routes,
    *admin_experiments.routes,
    *admin_knowledge.routes,
    *prompt_routes.routes,
]

middleware = [
    # Chat completions, the hot path, first: none of the layers below (it counts its 401s).
    Middleware(HotPath, endpoint=openai_routes.chat_endpoint),
    Middleware(AuthFailureMiddleware),  # it sees every other 401, whoever answers it
    Middleware(TraceIdMiddleware),
    Middleware(AccessMiddleware),
    Middleware(AuditMiddleware),  # inside: it reads the caller the access layer found
]

exception_handlers: dict[Any, ExceptionHandler] = {
    OpsgateError: handle_opsgate_error,
    **dict.fromkeys(OUTAGES, handle_outage),  # a backend is down: 503, never a 500
    404: not_found,
    405: not_found,
    Exception: handle_unexpected,
}
