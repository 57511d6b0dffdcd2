"""The composition root: builds the runtime (router + pipelines) from config, and swaps it
atomically on reload. In-flight requests keep the runtime they started with."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from opsgate.config.loader import load_config
from opsgate.config.schema import Config
from opsgate.pipeline.context import ChatCall, ChatResult, EmbeddingCall, EmbeddingResult
from opsgate.pipeline.endpoints import RouteChat, RouteEmbedding
from opsgate.pipeline.pipeline import Pipeline
from opsgate.pipeline.stages.authenticate import Authenticate
from opsgate.pipeline.stages.settle import Settle
from opsgate.providers.http import HTTPClient
from opsgate.routing.build import build_router
from opsgate.routing.router import Router

log = logging.getLogger("opsgate")


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    router: Router
    auth: Authenticate
    chat: Pipeline[ChatCall, ChatResult]
    embeddings: Pipeline[EmbeddingCall, EmbeddingResult]


def build_runtime(
    config: Config, http: HTTPClient, *, source: str, previous: Runtime | None = None
) -> Runtime:
    router = build_router(
        config, http, source=source, previous=previous.router if previous else None
    )
    master = config.settings.master_key
    auth = Authenticate(master.get_secret_value() if master else None)
    chat: Pipeline[ChatCall, ChatResult] = Pipeline([auth, Settle()], RouteChat(router))
    embeddings: Pipeline[EmbeddingCall, EmbeddingResult] = Pipeline([auth], RouteEmbedding(router))
    return Runtime(config, router, auth, chat, embeddings)


class Gateway:
    """Owns the process-wide pieces: the HTTP client and the current runtime."""

    def __init__(self, config: Config, *, config_path: str | Path | None = None) -> None:
        self.config_path = config_path
        self.source = str(config_path) if config_path else "<built-in default>"
        self.http = HTTPClient()
        self.runtime = build_runtime(config, self.http, source=self.source)
        self._reload_lock = asyncio.Lock()

    async def reload(self) -> Runtime:
        """Validate the config file again and swap it in; on any error the old one stays."""
        async with self._reload_lock:
            config = await asyncio.to_thread(load_config, self.config_path)
            runtime = build_runtime(config, self.http, source=self.source, previous=self.runtime)
            self.runtime = runtime
            log.info("config reloaded from %s", self.source)
            return runtime

    async def aclose(self) -> None:
        await self.http.aclose()
