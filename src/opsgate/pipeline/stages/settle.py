"""Settle: learn the request's token usage and cost once the answer is known.

Provider-reported usage is authoritative. The gateway always asks streaming upstreams for usage
(it needs it for cost), so the trailing usage-only chunk is removed here unless the client set
`stream_options.include_usage`. Where no usage comes back (some servers, a cut stream), tokens
are counted locally and the trace is marked `usage_estimated`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from opsgate.accounting import cost_micros, count_prompt_tokens, count_text_tokens
from opsgate.accounting.tokens import count_embedding_tokens
from opsgate.chat import ChatChunk, ChatRequest, ChatResponse, Usage
from opsgate.pipeline.context import (
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
    RequestContext,
)
from opsgate.pipeline.pipeline import Next


def settle(ctx: RequestContext, usage: Usage) -> None:
    """Price the usage with the serving deployment's price and count it against its tpm."""
    ctx.usage = usage
    dep = ctx.route.deployment
    if dep is not None:
        ctx.cost_micros = cost_micros(usage, dep.price)
        dep.health.window.add_tokens(usage.total_tokens)


def _estimate(req: ChatRequest, completion_text: str | int) -> Usage:
    completion = (
        completion_text if isinstance(completion_text, int) else count_text_tokens(completion_text)
    )
    prompt = count_prompt_tokens(req.messages, tools=req.params.get("tools"))
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


class Settle:
    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        result = await call_next(call)
        ctx = call.ctx
        if isinstance(result, ChatResponse):
            usage = result.usage
            if ctx.output is not None or usage is None:
                text = result.text
                if ctx.output is not None:
                    ctx.output.append(text)
            if usage is None:
                usage = _estimate(call.request, text)
                ctx.usage_estimated = True
            settle(ctx, usage)
            return result
        return _settle_stream(result, call.request, ctx)


async def _settle_stream(
    chunks: AsyncIterator[ChatChunk], req: ChatRequest, ctx: RequestContext
) -> AsyncIterator[ChatChunk]:
    keep_usage = req.include_usage
    pieces: list[str] = ctx.output if ctx.output is not None else []
    usage: Usage | None = None
    try:
        async for chunk in chunks:
            piece = chunk.text
            if piece:
                pieces.append(piece)
            found = chunk.usage
            if found is not None:
                usage = found
                if not keep_usage:
                    if chunk.is_usage_only:
                        continue
                    chunk.body.pop("usage", None)
            yield chunk
    finally:
        if usage is None:
            usage = _estimate(req, "".join(pieces))
            ctx.usage_estimated = True
        settle(ctx, usage)
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


class SettleEmbedding:
    async def __call__(
        self, call: EmbeddingCall, call_next: Next[EmbeddingCall, EmbeddingResult]
    ) -> EmbeddingResult:
        result = await call_next(call)
        raw = result.get("usage")
        prompt = raw.get("prompt_tokens") if isinstance(raw, dict) else None
        if isinstance(prompt, int):
            settle(call.ctx, Usage(prompt_tokens=prompt))
        else:
            settle(call.ctx, Usage(prompt_tokens=count_embedding_tokens(call.request.inputs)))
            call.ctx.usage_estimated = True
        return result
