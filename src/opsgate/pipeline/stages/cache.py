"""Cache: answer from the exact or semantic cache, or call on and store the fresh answer.

It sits after admission and before routing, inside `Record` (a hit is still traced) and outside
`Settle`, so a hit costs nothing and a miss is stored with the usage and cost Settle found. A
stream is folded into one answer as it passes and stored only when it finished; a cached answer
is replayed whole or as a stream, whichever the request asked for. A failing backend never
fails a request: it is served without the cache and traced as `bypass`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from opsgate.cache.answer import StreamFold, replay_body, replay_chunks
from opsgate.cache.errors import CacheUnavailableError
from opsgate.cache.plan import Plan, make_plan
from opsgate.cache.policy import HEADER, directives
from opsgate.cache.service import CacheService, Hit
from opsgate.chat import ChatChunk, ChatResponse
from opsgate.config.cache import CacheConfig
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.pipeline import Next
from opsgate.trace import CacheResult
from opsgate.types import JSONObject

log = logging.getLogger("opsgate.cache")


class Cache:
    def __init__(self, service: CacheService | None, config: CacheConfig) -> None:
        self._embeds_upstream = config.semantic.embedder.type == "gateway"
        """A sensitive question must not be embedded by a (possibly public) deployment."""
        self.service = service
        self.config = config

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        req, ctx = call.request, call.ctx
        found = directives(ctx.headers, req)  # a bad directive is a 400 even with caching off
        req.params.pop("cache", None)
        if self.service is None or not self.config.enabled:
            return await call_next(call)
        plan = make_plan(self.config, req, ctx.principal, ctx.labels.end_user, found)
        if ctx.sensitive and self._embeds_upstream:
            plan.semantic = None  # the question would go to an embeddings deployment
        started, t0 = time.time(), time.perf_counter()
        hit: Hit | None = None
        result: CacheResult = "miss" if plan.access.read else "bypass"
        if plan.access.read:
            try:
                hit = await self.service.find(plan)
            except CacheUnavailableError as exc:
                log.warning("cache lookup failed, serving without the cache: %s", exc)
                plan.access = replace(plan.access, read=False, write=False, reason="unavailable")
                result = "bypass"
        if hit is not None:
            result = hit.kind
        _mark(ctx, plan, result, hit, started, t0)
        if hit is not None:
            return _replay(ctx, hit, stream=req.stream, include_usage=req.include_usage)
        answer = await call_next(call)
        if not plan.access.write:
            return answer
        if isinstance(answer, ChatResponse):
            await self._save(ctx, plan, answer.body)
            return answer
        return self._tee(answer, ctx, plan)

    async def _save(self, ctx: RequestContext, plan: Plan, body: JSONObject) -> None:
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            return
        if any(not isinstance(c, dict) or not c.get("finish_reason") for c in choices):
            return  # a cut or failed answer is not worth replaying
        assert self.service is not None
        started, t0 = time.time(), time.perf_counter()
        try:
            stored = await self.service.save(plan, dict(body), ctx.cost_micros)
        except CacheUnavailableError as exc:
            log.warning("cache store failed: %s", exc)
            stored = False
        attrs: dict[str, object] = {"key": plan.key, "stored": stored, "ttl": plan.access.ttl}
        ctx.add_span("ca01", "cache_store", started, t0, attributes=attrs)

    async def _tee(
        self, chunks: AsyncIterator[ChatChunk], ctx: RequestContext, plan: Plan
    ) -> AsyncIterator[ChatChunk]:
        fold = StreamFold()
        try:
            async for chunk in chunks:
                fold.add(chunk.body)
                yield chunk
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        body = fold.completion(ctx.usage)  # only reached when the stream ended normally
        if body is not None:
            await self._save(ctx, plan, body)


def _mark(
    ctx: RequestContext,
    plan: Plan,
    result: CacheResult,
    hit: Hit | None,
    started: float,
    t0: float,
) -> None:
    """The cache result on the context, the response header and the lookup span."""
    ctx.cache = result
    ctx.response_headers[HEADER] = result
    attrs: dict[str, object] = {"result": result, "namespace": plan.meta.namespace}
    if plan.key:
        attrs["key"] = plan.key
    if plan.access.reason:
        attrs["reason"] = plan.access.reason
    if hit is not None:
        usage = hit.answer.usage
        ctx.tokens_saved = usage.total_tokens if usage is not None else 0
        ctx.cost_saved_micros = hit.answer.cost_micros
        ctx.cache_similarity = hit.similarity
        attrs.update(
            key=hit.key,
            tokens_saved=ctx.tokens_saved,
            cost_saved_micros=ctx.cost_saved_micros,
            age_s=round(time.time() - hit.answer.created, 3),
        )
        if hit.similarity is not None:
            attrs["similarity"] = round(hit.similarity, 4)
    ctx.add_span("ca00", "cache_lookup", started, t0, attributes=attrs)


def _replay(ctx: RequestContext, hit: Hit, *, stream: bool, include_usage: bool) -> ChatResult:
    response_id = f"chatcmpl-{ctx.trace_id}"
    if ctx.output is not None:
        ctx.output.append(ChatResponse(hit.answer.body).text)
    if not stream:
        return ChatResponse(replay_body(hit.answer, response_id))
    bodies = replay_chunks(hit.answer, response_id, include_usage=include_usage)
    return _chunks(bodies)


async def _chunks(bodies: list[JSONObject]) -> AsyncIterator[ChatChunk]:
    for body in bodies:
        yield ChatChunk(body)
