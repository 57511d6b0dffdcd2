"""Liveness and readiness probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsgate.api.responses import JSONResponse
from opsgate.gateway import Gateway


async def healthz(request: Request) -> Response:
    """Alive: the process answers. Says nothing about upstreams."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready: config loaded and at least one deployment can take traffic."""
    gateway: Gateway = request.app.state.gateway
    models = {
        name: sum(d.health.available() for d in group.deployments)
        for name, group in gateway.model_groups.items()
    }
    ready = any(models.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "available_deployments": models},
        status_code=200 if ready else 503,
    )


async def metrics(request: Request) -> Response:
    """Prometheus exposition (all workers' values in multiprocess mode)."""
    gateway: Gateway = request.app.state.gateway
    body, content_type = gateway.metrics.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)


routes = [
    Route("/metrics", metrics, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
