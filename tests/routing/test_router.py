"""Router behaviour with scripted upstreams (no network): retries, fallbacks, circuits, streams."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from opsgate.chat import ChatChunk, ChatRequest, ChatResponse
from opsgate.config import DeploymentConfig, RouterConfig
from opsgate.config.schema import CircuitConfig
from opsgate.errors import ModelNotFoundError, ServiceUnavailableError
from opsgate.providers.base import CallContext, Provider
from opsgate.providers.errors import (
    StreamBrokenError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from opsgate.routing.deployment import Deployment, ModelGroup
from opsgate.routing.health import Circuit, CircuitState, Health, RateWindow
from opsgate.routing.router import Router, RouteState


class Scripted(Provider):
    """An upstream stand-in that answers from a script: an exception to raise, or "ok"."""

    dialect: ClassVar[str] = "scripted"

    def __init__(self, deployment: DeploymentConfig, http: Any) -> None:
        super().__init__(deployment, http)
        self.script: list[Any] = []
        self.calls: list[CallContext] = []

    def _next(self) -> Any:
        return self.script.pop(0) if self.script else "ok"

    async def complete(self, req: ChatRequest, ctx: CallContext) -> ChatResponse:
        self.calls.append(ctx)
        step = self._next()
        if isinstance(step, BaseException):
            raise step
        return ChatResponse({"model": self.deployment.model, "choices": []})

    async def stream(self, req: ChatRequest, ctx: CallContext) -> AsyncIterator[ChatChunk]:
        self.calls.append(ctx)
        step = self._next()
        if isinstance(step, BaseException):
            raise step
        if step == "silent":
            await asyncio.sleep(30)
        yield ChatChunk({"model": self.deployment.model, "choices": [{"delta": {"content": "a"}}]})
        if step == "break":
            raise StreamBrokenError("broke midway")
        yield ChatChunk({"model": self.deployment.model, "choices": [{"finish_reason": "stop"}]})


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_router(
    groups: dict[str, list[str]], **router: Any
) -> tuple[Router, dict[str, Scripted], list[float]]:
    clock = FakeClock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    cfg = RouterConfig(**router)
    providers: dict[str, Scripted] = {}
    built: dict[str, ModelGroup] = {}
    for name, dep_ids in groups.items():
        deps = []
        for dep_id in dep_ids:
            dc = DeploymentConfig(provider="scripted", model=dep_id, timeout=30)
            prov = providers[dep_id] = Scripted(dc, None)
            health = Health(
                Circuit(cfg.circuit.failure_threshold, cfg.circuit.cooldown, clock),
                RateWindow(None, None, clock),
            )
            deps.append(Deployment(dep_id, name, dc, prov, health))
        built[name] = ModelGroup(name, "chat", deps)
    return Router(built, cfg, clock=clock, rng=random.Random(0), sleep=sleep), providers, slept


def req(model: str = "m", stream: bool = False) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}], stream=stream)


async def test_unknown_model_is_404() -> None:
    router, _, _ = make_router({"m": ["a"]})
    with pytest.raises(ModelNotFoundError):
        await router.complete(req("nope"), RouteState("t"))


async def test_retry_moves_to_another_deployment_without_waiting() -> None:
    router, p, slept = make_router({"m": ["a", "b"]}, strategy="least-busy")
    p["a"].script = [UpstreamStatusError(500, "boom")]
    p["b"].script = [UpstreamStatusError(500, "boom")]
    state = RouteState("t")
    await router.complete(req(), state)
    assert [a.error for a in state.attempts] == ["status_500", "status_500", None]
    assert len({a.deployment for a in state.attempts[:2]}) == 2, "second attempt tries the other"
    assert len(slept) == 1, "only retrying an already-tried deployment backs off"


async def test_retry_after_is_honoured_on_same_deployment() -> None:
    router, p, slept = make_router({"m": ["a"]}, retries=1)
    p["a"].script = [UpstreamStatusError(429, "slow down", retry_after=3)]
    state = RouteState("t")
    await router.complete(req(), state)
    assert slept and slept[0] >= 3
    assert state.deployment is not None and state.deployment.id == "a"


async def test_long_retry_after_skips_the_deployment() -> None:
    router, p, slept = make_router(
        {"m": ["a"], "f": ["b"]}, fallbacks={"m": ["f"]}, max_retry_after=5
    )
    p["a"].script = [UpstreamStatusError(429, "later", retry_after=60)]
    state = RouteState("t")
    await router.complete(req(), state)
    assert state.deployment is not None and state.deployment.id == "b"
    assert not slept


async def test_client_errors_are_not_retried() -> None:
    router, p, _ = make_router({"m": ["a", "b"]})
    p["a"].script = [UpstreamStatusError(400, "bad param")]
    p["b"].script = [UpstreamStatusError(400, "bad param")]
    with pytest.raises(UpstreamStatusError) as info:
        await router.complete(req(), RouteState("t"))
    assert info.value.status == 400
    assert len(p["a"].calls) + len(p["b"].calls) == 1


async def test_bad_upstream_key_fails_over_but_never_retries_that_deployment() -> None:
    router, p, _ = make_router({"m": ["a"], "f": ["b"]}, fallbacks={"m": ["f"]}, retries=3)
    p["a"].script = [UpstreamStatusError(401, "bad key")] * 4
    state = RouteState("t")
    await router.complete(req(), state)
    assert len(p["a"].calls) == 1
    assert state.deployment is not None and state.deployment.id == "b"


async def test_fallback_chain_and_exhaustion_status() -> None:
    router, p, _ = make_router({"m": ["a"], "f": ["b"]}, fallbacks={"m": ["f"]}, retries=1)
    p["a"].script = [UpstreamTimeoutError("slow")] * 2
    p["b"].script = [UpstreamConnectionError("down")] * 2
    state = RouteState("t")
    with pytest.raises(UpstreamError) as info:
        await router.complete(req(), state)
    assert info.value.status == 503
    assert "all attempts for model `m` failed" in info.value.message
    assert [a.deployment for a in state.attempts] == ["a", "a", "b", "b"]


async def test_circuit_opens_and_requests_skip_the_deployment() -> None:
    router, p, _ = make_router(
        {"m": ["a", "b"]},
        retries=0,
        strategy="weighted",
        circuit=CircuitConfig(failure_threshold=2, cooldown=30),
    )
    p["a"].script = [UpstreamStatusError(503, "down")] * 100
    for _ in range(20):
        with contextlib.suppress(UpstreamError):
            await router.complete(req(), RouteState("t"))
    a = router.groups["m"].deployments[0]
    assert a.health.circuit.state is CircuitState.OPEN
    assert len(p["a"].calls) == 2, "no calls reach an open circuit"


async def test_all_circuits_open_is_503() -> None:
    router, p, _ = make_router(
        {"m": ["a"]}, retries=0, circuit=CircuitConfig(failure_threshold=1, cooldown=30)
    )
    p["a"].script = [UpstreamStatusError(500, "x")]
    with pytest.raises(UpstreamError):
        await router.complete(req(), RouteState("t"))
    with pytest.raises(ServiceUnavailableError):
        await router.complete(req(), RouteState("t"))


async def test_request_timeout_bounds_each_attempt() -> None:
    router, p, _ = make_router({"m": ["a"]})
    await router.complete(req(), RouteState("t", timeout=2.5))
    assert p["a"].calls[0].timeout == 2.5


async def test_stream_failing_before_first_chunk_is_retried() -> None:
    router, p, _ = make_router({"m": ["a", "b"]}, strategy="least-busy")
    p["a"].script = [UpstreamStatusError(502, "x")]
    p["b"].script = [UpstreamStatusError(502, "x")]
    state = RouteState("t")
    chunks = [c async for c in router.stream(req(stream=True), state)]
    assert len(chunks) == 2
    assert len(state.attempts) == 3


async def test_stream_failing_after_first_chunk_propagates_and_counts() -> None:
    router, p, _ = make_router({"m": ["a"]})
    p["a"].script = ["break"]
    state = RouteState("t")
    got = []
    with pytest.raises(StreamBrokenError):
        async for c in router.stream(req(stream=True), state):
            got.append(c)
    assert len(got) == 1
    dep = router.groups["m"].deployments[0]
    assert dep.health.errors == 1 and dep.health.in_flight == 0


async def test_deployment_filter_leaves_none_is_503() -> None:
    router, _, _ = make_router({"m": ["a"]})
    with pytest.raises(ServiceUnavailableError):
        await router.complete(req(), RouteState("t", allow=lambda d: False))


async def test_stream_silent_after_head_is_bounded_by_the_attempt_timeout() -> None:
    router, p, _ = make_router({"m": ["a"]}, retries=0)
    p["a"].script = ["silent"]
    with pytest.raises(UpstreamTimeoutError, match=r"no chunk within 0\.2s"):
        async for _ in router.stream(req(stream=True), RouteState("t", timeout=0.2)):
            pass
    assert router.groups["m"].deployments[0].health.in_flight == 0
