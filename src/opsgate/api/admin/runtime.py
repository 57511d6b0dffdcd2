"""Admin routes (`/admin/v1`). For now: config reload and deployment health."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission
from opsgate.access.principal import Principal
from opsgate.api.responses import JSONResponse, error_response
from opsgate.config.loader import ConfigError
from opsgate.errors import BadRequestError, OpsgateError
from opsgate.gateway import Gateway
from opsgate.web.auth import authorise


def _authorise(request: Request, gateway: Gateway, *needs: Permission) -> Principal:
    """The caller (authenticated by the access middleware) if its role has `needs`; with no
    `needs`, admins only. Without a master key, callers on this machine are admins."""
    return authorise(request, *needs)


async def reload_config(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    try:
        _authorise(request, gateway, Permission.CONFIG_RELOAD)
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
        _authorise(request, gateway, Permission.DEPLOYMENTS_READ)
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
