"""Admin routes (`/admin/v1`). For now: config reload and deployment health."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsgate.api.responses import JSONResponse, error_response
from opsgate.config.loader import ConfigError
from opsgate.errors import BadRequestError, OpsgateError, PermissionDeniedError
from opsgate.gateway import Gateway
from opsgate.pipeline.context import RequestContext

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _authorise(request: Request, gateway: Gateway) -> None:
    """Master key when one is set; without one, only callers on this machine."""
    ctx = RequestContext(headers=request.headers)
    principal = gateway.runtime.auth.authenticate(ctx)
    if principal.is_master:
        return
    host = request.client.host if request.client else ""
    if gateway.runtime.config.settings.master_key is None and host in _LOOPBACK:
        return
    raise PermissionDeniedError("admin routes need the master key", code="admin_only")


async def reload_config(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    try:
        _authorise(request, gateway)
        try:
            runtime = await gateway.reload()
        except ConfigError as exc:
            raise BadRequestError(
                "config rejected, the previous config keeps serving: " + "; ".join(exc.problems),
                code="invalid_config",
            ) from None
    except OpsgateError as exc:
        return error_response(exc)
    return JSONResponse(
        {"status": "reloaded", "source": gateway.source, "models": sorted(runtime.router.groups)}
    )


async def deployments(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    try:
        _authorise(request, gateway)
    except OpsgateError as exc:
        return error_response(exc)
    data = []
    for group in gateway.runtime.router.groups.values():
        for d in group.deployments:
            h = d.health
            data.append(
                {
                    "id": d.id,
                    "model": group.name,
                    "provider": d.config.provider,
                    "upstream_model": d.config.model,
                    "tags": d.tags,
                    "circuit": h.circuit.state.value,
                    "available": h.available(),
                    "in_flight": h.in_flight,
                    "requests": h.requests,
                    "errors": h.errors,
                    "error_rate": round(h.error_rate, 4),
                    "latency_ewma_s": h.latency,
                    "ttft_ewma_s": h.ttft,
                    "last_error": h.last_error,
                }
            )
    return JSONResponse({"object": "list", "data": data})


routes = [
    Route("/admin/v1/config/reload", reload_config, methods=["POST"]),
    Route("/admin/v1/deployments", deployments, methods=["GET"]),
]
