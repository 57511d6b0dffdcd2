"""`create_app(config)`: the ASGI application, with no state built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from opsgate.api import health, openai_routes
from opsgate.api.access_middleware import AccessMiddleware
from opsgate.api.admin import access as admin_access
from opsgate.api.admin import alerts as admin_alerts
from opsgate.api.admin import cache as admin_cache
from opsgate.api.admin import compliance as admin_compliance
from opsgate.api.admin import runtime as admin_runtime
from opsgate.api.admin import traces as admin_traces
from opsgate.api.audit_middleware import AuditMiddleware
from opsgate.api.middleware import TraceIdMiddleware
from opsgate.api.responses import (
    error_response,
    handle_opsgate_error,
    handle_outage,
    handle_unexpected,
)
from opsgate.config.loader import ConfigError, load_config
from opsgate.config.schema import Config
from opsgate.errors import NotFoundError, OpsgateError
from opsgate.gateway import Gateway
from opsgate.telemetry.otel import GenAITracer
from opsgate.web.audit import append_or_log
from opsgate.web.outage import OUTAGES

log = logging.getLogger("opsgate")


def create_app(
    config: Config | None = None,
    *,
    config_path: str | Path | None = None,
    tracer: GenAITracer | None = None,
) -> Starlette:
    """Build the gateway app. Without `config`, it is loaded from `config_path` (or the default).

    `tracer` replaces the OpenTelemetry exporter chosen from the environment (tests pass one
    with an in-memory exporter).
    """
    if config is None:
        config = load_config(config_path)
    gateway = Gateway(config, config_path=config_path, tracer=tracer)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _watch_sighup(gateway)
        await gateway.start()
        try:
            yield
        finally:
            await gateway.aclose()

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            err = OpsgateError(f"Method {request.method} is not allowed on {request.url.path}.")
            err.status, err.type, err.code = 405, "invalid_request_error", "method_not_allowed"
            return error_response(err)
        return error_response(
            NotFoundError(f"Unknown path {request.url.path}.", code="unknown_url")
        )

    from opsgate.ui import create_ui  # not at the top: the dashboard imports the admin API

    app = Starlette(
        routes=[
            *openai_routes.routes,
            *health.routes,
            *admin_runtime.routes,
            *admin_traces.routes,
            *admin_access.routes,
            *admin_cache.routes,
            *admin_compliance.routes,
            *admin_alerts.routes,
            Mount("/ui", app=create_ui()),  # HTML, with its own 404/405 pages
        ],
        middleware=[
            Middleware(TraceIdMiddleware),
            Middleware(AccessMiddleware),
            Middleware(AuditMiddleware),  # inside: it reads the caller the access layer found
        ],
        lifespan=lifespan,
        exception_handlers={
            OpsgateError: handle_opsgate_error,
            **dict.fromkeys(OUTAGES, handle_outage),
            404: not_found,
            405: not_found,
            Exception: handle_unexpected,
        },
    )
    app.state.gateway = gateway
    return app


def _watch_sighup(gateway: Gateway) -> None:
    """SIGHUP reloads the config (main thread only; tests run apps in other threads)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return
    loop = asyncio.get_running_loop()

    async def reload() -> None:
        outcome = "reloaded"
        try:
            await gateway.reload()
        except ConfigError as exc:
            outcome = "rejected"
            log.error("config reload rejected, keeping the old config: %s", exc)
        detail = {"outcome": outcome}
        await append_or_log(gateway.audit, "system:sighup", "config.reload", gateway.source, detail)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory` and worker processes: config from $OPSGATE_CONFIG."""
    return create_app()
