"""Admin routes over the running gateway: config reload and deployment health."""

from __future__ import annotations

from starlette.responses import Response

from opsgate.access.permissions import Permission
from opsgate.api.responses import JSONResponse
from opsgate.config.loader import ConfigError
from opsgate.errors import BadRequestError
from opsgate.web.admin import AdminCall, admin_route

P = Permission


async def reload_config(call: AdminCall) -> Response:
    """Read the config file again and swap it in (the old one keeps serving if it is bad)"""
    gateway = call.gateway
    try:
        runtime = await gateway.reload()
    except ConfigError as exc:
        raise BadRequestError(
            "config rejected, the previous config keeps serving: " + "; ".join(exc.problems),
            code="invalid_config",
        ) from None
    return JSONResponse(
        {"status": "reloaded", "source": gateway.source, "models": sorted(runtime.router.groups)}
    )


async def deployments(call: AdminCall) -> Response:
    """Every deployment with its live health on this replica (and, where it loads adapters,
    the ones loaded)"""
    data = []
    for group in call.gateway.model_groups.values():
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
            loader = d.provider.adapters
            if loader is not None:  # adapter_loading: what this process loaded on the upstream
                data[-1]["adapters_loaded"] = sorted(loader.loaded)
    return JSONResponse({"object": "list", "data": data})


routes = [
    admin_route("POST", "/admin/v1/config/reload", reload_config, P.CONFIG_RELOAD),
    admin_route("GET", "/admin/v1/deployments", deployments, P.DEPLOYMENTS_READ),
]
