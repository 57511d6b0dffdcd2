"""Settle: learn the request's token usage, and hide the usage chunk the client did not ask for.

The gateway always asks streaming upstreams for usage (it needs it for cost), so the trailing
usage-only chunk is removed here unless the client set `stream_options.include_usage`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from opsgate.chat import ChatChunk, ChatResponse
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.pipeline import Next


class Settle:
    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        result = await call_next(call)
        if isinstance(result, ChatResponse):
            call.ctx.usage = result.usage
            return result
        return _tee_usage(result, call.ctx, keep=call.request.include_usage)


async def _tee_usage(
    chunks: AsyncIterator[ChatChunk], ctx: RequestContext, *, keep: bool
) -> AsyncIterator[ChatChunk]:
    try:
        async for chunk in chunks:
            usage = chunk.usage
            if usage is not None:
                ctx.usage = usage
                if not keep:
                    if chunk.is_usage_only:
                        continue
                    chunk.body.pop("usage", None)
            yield chunk
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
