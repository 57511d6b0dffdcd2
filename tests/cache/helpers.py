"""Put the cache stage into a running test gateway, as `build_runtime` does once it is wired.

The stage goes just before `Settle` (inside Record, Authenticate and admission); the service is
closed by the gateway's own shutdown, on the gateway's event loop.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from opsgate.access.principal import Principal
from opsgate.api import admin_cache
from opsgate.cache import CacheConfig, CacheService, build_cache
from opsgate.errors import AuthenticationError
from opsgate.pipeline.pipeline import Next, Pipeline
from opsgate.pipeline.stages.authenticate import Authenticate
from opsgate.pipeline.stages.cache import Cache
from opsgate.pipeline.stages.settle import Settle
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream

REDIS_URL = os.environ.get("OPSGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def install_cache(
    server: GatewayServer, config: dict[str, Any] | CacheConfig, service: CacheService | None = None
) -> CacheService:
    cfg = config if isinstance(config, CacheConfig) else CacheConfig.model_validate(config)
    built = service or build_cache(cfg, REDIS_URL)
    assert built is not None
    gateway = server.gateway
    runtime = gateway.runtime
    stages = [s for s in runtime.chat.stages if not isinstance(s, Cache)]
    at = next(i for i, s in enumerate(stages) if isinstance(s, Settle))
    stages.insert(at, Cache(built, cfg))
    gateway.runtime = dataclasses.replace(runtime, chat=Pipeline(stages, runtime.chat.endpoint))
    gateway.cache = built
    original = gateway.aclose

    async def aclose() -> None:
        await built.aclose()
        await original()

    gateway.aclose = aclose
    mount_admin(server)
    return built


def one_model(fake: FakeUpstream, name: str = "m") -> dict[str, Any]:
    dep = {"provider": "openai", "id": "a", "base_url": fake.url, "model": "up", "api_key": "k"}
    dep["price"] = {"input": 1, "output": 2}
    return {"models": [{"name": name, "deployments": [dep]}]}


class FakeKeys:
    """Stands in for access control (not built yet): a bearer token names a key and its team."""

    def __init__(self, keys: dict[str, Principal]) -> None:
        self.keys = keys

    async def __call__(self, call: Any, call_next: Next[Any, Any]) -> Any:
        token = call.ctx.bearer
        if token not in self.keys:
            raise AuthenticationError("unknown test key", code="invalid_api_key")
        call.ctx.principal = self.keys[token]
        return await call_next(call)


def use_keys(server: GatewayServer, keys: dict[str, Principal]) -> None:
    """Swap the chat pipeline's Authenticate for `FakeKeys(keys)`."""
    runtime = server.gateway.runtime
    stages = [FakeKeys(keys) if isinstance(s, Authenticate) else s for s in runtime.chat.stages]
    server.gateway.runtime = dataclasses.replace(
        runtime, chat=Pipeline(stages, runtime.chat.endpoint)
    )


def mount_admin(server: GatewayServer) -> None:
    """Add the cache admin routes unless the app already has them."""
    paths = {getattr(r, "path", None) for r in server.app.router.routes}
    server.app.router.routes.extend(r for r in admin_cache.routes if r.path not in paths)
