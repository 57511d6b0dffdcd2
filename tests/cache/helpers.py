"""Test helpers: a one-model config, and principals with teams for tenant tests."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from opsgate.access.principal import Principal
from opsgate.errors import AuthenticationError
from opsgate.pipeline.pipeline import Next, Pipeline
from opsgate.pipeline.stages.authenticate import Authenticate
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream

REDIS_URL = os.environ.get("OPSGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def one_model(fake: FakeUpstream, name: str = "m") -> dict[str, Any]:
    dep = {"provider": "openai", "id": "a", "base_url": fake.url, "model": "up", "api_key": "k"}
    dep["price"] = {"input": 1, "output": 2}
    return {"models": [{"name": name, "deployments": [dep]}]}


class FakeKeys:
    """Stands in for Authenticate: a bearer token names a key and its team, so tenant tests
    need no key management."""

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
