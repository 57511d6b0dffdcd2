"""`create_app(config)`: the ASGI application, with no state built at import time.

The one place the HTTP surfaces meet: the API (`opsgate.api.app`: its routes, middleware and
JSON error handlers) with the dashboard mounted at `/ui`, around one `Gateway` that the app's
lifespan starts and closes. See docs/architecture.md for the layers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
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

GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""


def create_app(
    config: Config | None = None,
    *,
    config_path: str | Path | None = None,
    tracer: GenAITracer | None = None,
    own_process: bool = False,
) -> Starlette:
    """Build the gateway app. Without `config`, it is loaded from `config_path` (or the default).

    `tracer` replaces the OpenTelemetry exporter chosen from the environment (tests pass one
    with an in-memory exporter). `own_process`: the app is the process's only one (a server
    worker), so it may tune the garbage collector after start-up (`settle_heap`).
    """
    if config is None:
        config = load_config(config_path)
    gateway = Gateway(config, config_path=config_path, tracer=tracer)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _watch_sighup(gateway)
        await gateway.start()
        if own_process:
            settle_heap()
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


def settle_heap() -> None:
    """Keep the collector off the start-up heap, and run it less often.

    Everything alive after start-up (modules, config, compiled schemas, caches) lives as long as
    the process, yet every full collection walked all of it: about 100 ms each, which was the
    gateway's p99 at c=32 (issue #22; docs/benchmarks.md). `gc.freeze` moves those objects out
    of the collector's sight; the higher young-generation threshold makes collections rarer,
    at the cost of cyclic garbage living a little longer. Only a server worker does this: a
    test process that builds many apps would keep each one's cycles for good.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


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
    return create_app(own_process=True)
