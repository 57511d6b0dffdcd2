"""A real gateway with the cache stage, in front of the `alpha` fake upstream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from opsgate.access.principal import Principal
from tests.cache.helpers import one_model, use_keys
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream

CachedGateway = Callable[..., GatewayServer]
__all__ = ["CachedGateway", "cached"]


@pytest.fixture
def cached(gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]) -> CachedGateway:
    """`cached(cache_config, keys=None)`: a gateway on `alpha` with the cache installed."""

    def start(
        cache: dict[str, Any] | None = None, *, keys: dict[str, Principal] | None = None
    ) -> GatewayServer:
        data = {**one_model(upstreams["alpha"]), "traces": {"flush_interval": 0.05}}
        gw = gateway({**data, "cache": cache or {}})
        if keys is not None:
            use_keys(gw, keys)
        return gw

    return start
