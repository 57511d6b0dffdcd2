"""`create_app(config)`: the ASGI application, with no state built at import time.

The one place the HTTP surfaces meet: the API (`opsgate.api.app`: its routes, middleware and
JSON error handlers) with the dashboard mounted at `/ui`, around one `Gateway` that the app's
lifespan starts and closes. See docs/architecture.md for the layers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount

from opsgate.api import app as api
from opsgate.config.loader import ConfigError, load_config
from opsgate.config.schema import Config
from opsgate.gateway import Gateway
from opsgate.telemetry.otel import GenAITracer
from opsgate.ui import create_ui
from opsgate.web.audit import append_or_log

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

    app = Starlette(
        routes=[
            *api.routes,
            Mount("/ui", app=create_ui()),  # HTML, with its own 404/405 pages
        ],
        middleware=api.middleware,
        lifespan=lifespan,
        exception_handlers=api.exception_handlers,
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
