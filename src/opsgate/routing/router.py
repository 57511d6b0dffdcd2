"""The router: picks a deployment, calls it, retries and falls back until one answers.

Retries stay within a model group (a different deployment first, the same one again only after
a jittered backoff that honours Retry-After); fallbacks move to other model groups. A stream is
committed to a deployment only once its first chunk arrived, so a stream that fails early is
retried like any other call and one that fails later ends cleanly at the API layer.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from opsgate.chat import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest
from opsgate.config.schema import RouterConfig
from opsgate.errors import (
    BadRequestError,
    GatewayTimeoutError,
    ModelNotFoundError,
    OpsgateError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from opsgate.providers.base import CallContext
from opsgate.providers.errors import UpstreamError, UpstreamTimeoutError
from opsgate.routing.deployment import Deployment, ModelGroup
from opsgate.routing.health import Clock
from opsgate.routing.strategies import STRATEGIES
from opsgate.types import JSONObject

T = TypeVar("T")


@dataclass(slots=True)
class Attempt:
    """One call to one deployment, for traces and the x-opsgate-attempts header."""

    deployment: str
    group: str
    started: float
    seconds: float
    error: str | None = None
    message: str | None = None


@dataclass(slots=True)
class RouteState:
    """What routing needs from, and tells back to, the request that owns it."""

    trace_id: str
    timeout: float | None = None
    allow: Callable[[Deployment], bool] | None = None
    require_tags: frozenset[str] | None = None
    """Set for a sensitive request: only deployments carrying one of these tags may serve it
    (with fallbacks too); none configured is a 403, never a quiet public call."""
    extra_headers: dict[str, str] = field(default_factory=dict)
    team_id: str | None = None
    """The caller's team: picks a deployment's per-team adapter (`team_adapters`)."""
    attempts: list[Attempt] = field(default_factory=list)
    deployment: Deployment | None = None


class Router:
    def __init__(
        self,
        groups: dict[str, ModelGroup],
        config: RouterConfig,
        *,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.groups = groups
        self.config = config
        self.strategy = STRATEGIES[config.strategy]
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep

    # -- public calls ----------------------------------------------------------------------

    def group(self, model: str, kind: str = "chat") -> ModelGroup:
        group = self.groups.get(model)
        if group is None:
            raise ModelNotFoundError(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
            )
        if group.kind != kind:
            raise BadRequestError(
                f"model `{model}` is a {group.kind} model and cannot serve this request",
                param="model",
                code="wrong_model_kind",
            )
        return group

    async def complete(self, req: ChatRequest, state: RouteState) -> ChatResponse:
        async def call(dep: Deployment, ctx: CallContext) -> ChatResponse:
            return await dep.provider.complete(req, ctx)

        return await self._run(req.model, "chat", state, False, call)

    async def embed(self, req: EmbeddingRequest, state: RouteState) -> JSONObject:
        async def call(dep: Deployment, ctx: CallContext) -> JSONObject:
            return await dep.provider.embed(req, ctx)

        return await self._run(req.model, "embedding", state, False, call)

    async def stream(self, req: ChatRequest, state: RouteState) -> AsyncIterator[ChatChunk]:
        """Yield the chosen deployment's chunks; `state.deployment` is set before the first."""

        async def start(
            dep: Deployment, ctx: CallContext
        ) -> tuple[ChatChunk, AsyncIterator[ChatChunk]]:
            chunks = aiter(dep.provider.stream(req, ctx))
            try:
                # The attempt's timeout bounds the first chunk, not just the response head: an
                # upstream that answers 200 and then stays silent must not hold the request.
                async with asyncio.timeout(ctx.timeout):
                    return await anext(chunks), chunks
            except TimeoutError:
                await _aclose(chunks)
                raise UpstreamTimeoutError(
                    f"upstream sent no chunk within {ctx.timeout:g}s"
                ) from None
            except StopAsyncIteration:
                raise UpstreamError("upstream stream ended before its first chunk") from None
            except BaseException:
                await _aclose(chunks)
                raise

        first, chunks = await self._run(req.model, "chat", state, True, start)
        dep = state.deployment
        assert dep is not None
        dep.health.in_flight += 1
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        except UpstreamError as exc:
            dep.health.on_stream_broken(exc.kind)
            raise
        finally:
            dep.health.in_flight -= 1
            await _aclose(chunks)

    # -- the attempt loop ------------------------------------------------------------------

    async def _run(
        self,
        model: str,
        kind: str,
        state: RouteState,
        stream: bool,
        call: Callable[[Deployment, CallContext], Awaitable[T]],
    ) -> T:
        chain = [self.group(model, kind)]
        chain += [self.groups[name] for name in self.config.fallbacks.get(model, ())]
        if state.require_tags is not None:
            chain = _private_only(model, chain, state.require_tags)
        budget = min(self.config.request_timeout, state.timeout or self.config.request_timeout)
        deadline = self._clock() + budget
        last: UpstreamError | None = None
        failures = 0
        for group in chain:
            tried: set[str] = set()
            spent: set[str] = set()
            for _ in range(self.config.retries + 1):
                dep = self._pick(group, tried, spent, state, stream)
                if dep is None:
                    break
                await self._wait_before(dep, dep.id in tried, failures, deadline)
                try:
                    return await self._attempt(dep, state, stream, deadline, call)
                except UpstreamError as exc:
                    if not exc.failover:
                        raise
                    last, failures = exc, failures + 1
                    tried.add(dep.id)
                    if not exc.retryable:
                        spent.add(dep.id)
        raise self._exhausted(model, last)

    async def _attempt(
        self,
        dep: Deployment,
        state: RouteState,
        stream: bool,
        deadline: float,
        call: Callable[[Deployment, CallContext], Awaitable[T]],
    ) -> T:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise GatewayTimeoutError("the request ran out of time before an upstream answered")
        ctx = CallContext(
            trace_id=state.trace_id,
            timeout=min(dep.config.timeout, remaining),
            stream_idle_timeout=dep.config.stream_idle_timeout,
            extra_headers=state.extra_headers,
            adapter=dep.config.team_adapters.get(state.team_id or "") or dep.config.adapter,
        )
        started, t0 = time.time(), self._clock()
        dep.health.on_start()
        try:
            result = await call(dep, ctx)
        except UpstreamError as exc:
            dep.health.on_failure(exc.kind, counts=exc.failover)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after:
                dep.health.cool(retry_after)
            state.attempts.append(
                Attempt(dep.id, dep.group, started, self._clock() - t0, exc.kind, exc.message)
            )
            raise
        except BaseException:
            dep.health.on_failure("cancelled", counts=False)
            raise
        seconds = self._clock() - t0
        dep.health.on_success(seconds, stream=stream)
        state.attempts.append(Attempt(dep.id, dep.group, started, seconds))
        state.deployment = dep
        return result

    def _pick(
        self,
        group: ModelGroup,
        tried: set[str],
        spent: set[str],
        state: RouteState,
        stream: bool,
    ) -> Deployment | None:
        horizon = self.config.max_retry_after
        usable = [
            d
            for d in group.deployments
            if d.id not in spent
            and d.health.available()
            and d.health.cooling_for() <= horizon
            and (state.allow is None or state.allow(d))
            and (state.require_tags is None or not state.require_tags.isdisjoint(d.tags))
        ]
        fresh = [d for d in usable if d.id not in tried] or usable
        ready = [d for d in fresh if d.health.cooling_for() == 0]
        if ready:
            return self.strategy(ready, stream, self._rng)
        return min(fresh, key=lambda d: d.health.cooling_for(), default=None)

    async def _wait_before(
        self, dep: Deployment, again: bool, failures: int, deadline: float
    ) -> None:
        wait = dep.health.cooling_for()
        if again and failures:
            backoff = min(self.config.backoff_max, self.config.backoff_base * 2 ** (failures - 1))
            wait = max(wait, backoff * self._rng.uniform(0.5, 1.0))
        wait = min(wait, max(0.0, deadline - self._clock()))
        if wait > 0:
            await self._sleep(wait)

    def _exhausted(self, model: str, last: UpstreamError | None) -> OpsgateError:
        if last is None:
            return ServiceUnavailableError(
                f"no deployment of model `{model}` is available right now "
                "(circuit open, rate-limited upstream, or none allowed for this request)",
                code="no_available_deployment",
            )
        last.message = f"all attempts for model `{model}` failed; last error: {last.message}"
        return last


def _private_only(model: str, chain: list[ModelGroup], tags: frozenset[str]) -> list[ModelGroup]:
    """The groups of `chain` with a deployment tagged one of `tags`; 403 when there is none."""
    kept = [g for g in chain if any(not tags.isdisjoint(d.tags) for d in g.deployments)]
    if not kept:
        raise PermissionDeniedError(
            f"This request is marked sensitive, so it may only go to a deployment tagged "
            f"{' or '.join(sorted(tags))}; model `{model}` (with its fallbacks) has none.",
            code="no_private_deployment",
            param="model",
        )
    return kept


async def _aclose(chunks: AsyncIterator[ChatChunk]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()
