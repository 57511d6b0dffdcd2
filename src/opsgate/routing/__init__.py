"""Routing: model groups, deployments, strategies, health, retries and fallbacks."""

from opsgate.routing.build import build_router
from opsgate.routing.deployment import Deployment, ModelGroup
from opsgate.routing.health import CircuitState, Health
from opsgate.routing.router import Attempt, Router, RouteState

__all__ = [
    "Attempt",
    "CircuitState",
    "Deployment",
    "Health",
    "ModelGroup",
    "RouteState",
    "Router",
    "build_router",
]
