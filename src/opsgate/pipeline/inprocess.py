"""Chat calls made from inside the gateway through its own chat pipeline (online judges).

An in-process call is an ordinary request in every way that matters: it is authenticated
(with a configured key, whose budgets and allowed models then apply, or as the gateway's own
master principal), admitted, guarded, cached, routed, costed and traced, with `source` in its
trace metadata saying who made it. It skips only the HTTP hop. Errors come back as
`CallError`, never raised, like the HTTP client's (evals/client.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from opsgate.access.principal import MASTER
from opsgate.chat import ChatRequest, ChatResponse
from opsgate.errors import OpsgateError
from opsgate.evals.client import CallError, Completion
from opsgate.identity import METADATA_HEADER
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.pipeline import Pipeline

ChatPipeline = Pipeline[ChatCall, ChatResult]


class PipelineClient:
    """`await client.chat(model, messages, **params)` through `pipeline()` (the current
    runtime's chat pipeline, looked up per call so a reload applies)."""

    def __init__(
        self,
        pipeline: Callable[[], ChatPipeline],
        *,
        source: str,
        key: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._pipeline = pipeline
        self._metadata = orjson.dumps({"source": source}).decode()
        self._key = key

    def _context(self) -> RequestContext:
        headers = {METADATA_HEADER: self._metadata}
        key = self._key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        ctx = RequestContext(headers=headers)
        if not key:
            ctx.principal = MASTER
        return ctx

    async def chat(
        self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> Completion | CallError:
        ctx = self._context()
        request = ChatRequest(model=model, messages=[dict(m) for m in messages], params=params)
        started = time.monotonic()
        try:
            answer = await self._pipeline()(ChatCall(ctx, request))
        except OpsgateError as exc:
            return CallError(exc.status, exc.message, exc.code, ctx.trace_id)
        if not isinstance(answer, ChatResponse):  # not asked to stream: never happens
            return CallError(502, "a streamed answer to a non-streamed call", None, ctx.trace_id)
        choices = answer.body.get("choices") or [{}]
        message = choices[0].get("message") or {}
        usage = answer.usage
        return Completion(
            str(message.get("content") or ""),
            usage.prompt_tokens if usage is not None else 0,
            usage.completion_tokens if usage is not None else 0,
            ctx.cost_micros,
            ctx.trace_id,
            time.monotonic() - started,
            choices[0].get("finish_reason"),
        )
