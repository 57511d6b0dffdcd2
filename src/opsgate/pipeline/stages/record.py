"""Record: the outermost stage. It opens the request's trace, closes it when the answer (or
the stream, or the error) is done, and hands it to the publisher.

It is also where the caller's own labels (end user, session, metadata: `opsgate.identity`) are
read and validated, once, onto `ctx.labels`: every later stage reads them there; where the
answer's confidence and malformed flags are taken (`opsgate.evals.completions`); and where
online scoring draws the finished trace (`TracePublisher.draw`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from opsgate.chat import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest
from opsgate.errors import OpsgateError
from opsgate.evals.completions import TRUNCATED, CompletionCheck
from opsgate.evals.online import Draw
from opsgate.identity import caller_labels
from opsgate.pipeline.context import RequestContext
from opsgate.pipeline.pipeline import Next
from opsgate.pipeline.publish import TraceDetail, TracePublisher
from opsgate.trace import SpanRecord, TraceRecord

Endpoint = Literal["chat", "embeddings"]
log = logging.getLogger("opsgate.record")
_DISCONNECTED = 499
_NO_DETAIL = TraceDetail()  # the nginx convention for "client closed the request"


class BodyMasker(Protocol):
    """Replaces PII in stored bodies with typed placeholders (the guard's masker)."""

    def mask_body(self, body: Any) -> Any: ...

    def mask_text(self, text: str) -> str: ...


class Record:
    def __init__(
        self,
        publisher: TracePublisher,
        endpoint: Endpoint,
        masker: BodyMasker | None = None,
        *,
        mask_all: bool = False,
    ) -> None:
        self.publisher = publisher
        self.endpoint = endpoint
        self.masker = masker
        self.mask_all = mask_all
        """`traces.store_bodies: masked`: every stored body is masked, not only those a guard
        policy asks for (`ctx.mask_bodies`)."""

    async def __call__(self, call: Any, call_next: Next[Any, Any]) -> Any:
        ctx: RequestContext = call.ctx
        req: ChatRequest | EmbeddingRequest = call.request
        trace = self._open(ctx, req)
        check: CompletionCheck | None = None
        try:
            ctx.labels = labels = caller_labels(ctx.headers, req.params)
            trace.metadata, trace.session_id = labels.metadata, labels.session_id
            trace.end_user = labels.end_user
            if isinstance(req, ChatRequest):
                check = CompletionCheck.of(req)
                if self.publisher.wants_output or self.publisher.samples(req.model):
                    ctx.output = []
            result = await call_next(call)
        except OpsgateError as exc:
            self._close(trace, ctx, req, error=exc)
            raise
        except asyncio.CancelledError:
            self._close(trace, ctx, req, disconnected=True)
            raise
        if isinstance(req, ChatRequest) and req.stream and not isinstance(result, ChatResponse):
            return self._watch(result, trace, ctx, req, check)
        body = result.body if isinstance(result, ChatResponse) else result
        if check is not None:
            check.response(body)
        self._close(trace, ctx, req, body=body, check=check)
        return result

    def rejected(self, ctx: RequestContext, error: OpsgateError, model: Any = None) -> None:
        """Trace a request refused before it could be parsed (bad JSON, too large, ...)."""
        trace = TraceRecord(
            trace_id=ctx.trace_id,
            started_at=ctx.started,
            duration_ms=0.0,
            endpoint=self.endpoint,
            model_requested=model if isinstance(model, str) else "",
        )
        self._finish(trace, ctx, None, error=error)

    # -- internals ---------------------------------------------------------------------------

    def _open(self, ctx: RequestContext, req: ChatRequest | EmbeddingRequest) -> TraceRecord:
        return TraceRecord(
            trace_id=ctx.trace_id,
            started_at=ctx.started,
            duration_ms=0.0,
            endpoint=self.endpoint,
            model_requested=req.model,
            stream=isinstance(req, ChatRequest) and req.stream,
        )

    async def _watch(
        self,
        chunks: AsyncIterator[ChatChunk],
        trace: TraceRecord,
        ctx: RequestContext,
        req: ChatRequest,
        check: CompletionCheck | None,
    ) -> AsyncIterator[ChatChunk]:
        error: OpsgateError | None = None
        disconnected = False
        last: dict[str, Any] = {}
        try:
            async for chunk in chunks:
                if trace.ttft_ms is None:
                    trace.ttft_ms = (time.perf_counter() - ctx.t0) * 1000
                    last = {"id": chunk.body.get("id"), "model": chunk.body.get("model")}
                for choice in chunk.body.get("choices") or ():
                    if choice.get("finish_reason"):
                        last["finish_reason"] = choice["finish_reason"]
                if check is not None:
                    check.chunk(chunk.body)
                yield chunk
        except OpsgateError as exc:
            error = exc
            raise
        except (GeneratorExit, asyncio.CancelledError):
            disconnected = True
            raise
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()  # the inner stages settle usage before the trace closes
            summary = {**last, "choices": [{"finish_reason": last.get("finish_reason")}]}
            self._close(
                trace,
                ctx,
                req,
                body=summary if last else None,
                error=error,
                disconnected=disconnected,
                check=check,
            )

    def _close(
        self,
        trace: TraceRecord,
        ctx: RequestContext,
        req: ChatRequest | EmbeddingRequest,
        *,
        body: dict[str, Any] | None = None,
        error: OpsgateError | None = None,
        disconnected: bool = False,
        check: CompletionCheck | None = None,
    ) -> None:
        dep = ctx.route.deployment
        if ctx.prompt is not None:
            trace.prompt_name, trace.prompt_label = ctx.prompt.name, ctx.prompt.label
            trace.prompt_version = str(ctx.prompt.version)
        if ctx.experiment is not None:
            trace.experiment = ctx.experiment.experiment.name
            trace.variant = ctx.experiment.variant.name
        if dep is not None:
            trace.deployment, trace.provider = dep.id, dep.config.provider
            asked = ctx.prompt.model if ctx.prompt is not None else req.model
            if ctx.experiment is not None and ctx.experiment.variant.model is not None:
                asked = ctx.experiment.variant.model
            trace.fallback = dep.group != asked
        elif ctx.route.attempts:  # every attempt failed: blame the last deployment tried
            trace.deployment = ctx.route.attempts[-1].deployment
        trace.attempts = len(ctx.route.attempts)
        trace.spans = [*ctx.spans, *_attempt_spans(ctx)]
        trace.cache = ctx.cache
        if ctx.guard_verdicts:
            trace.guard_verdicts = [v.to_json() for v in ctx.guard_verdicts]
        if ctx.usage is not None:
            trace.prompt_tokens = ctx.usage.prompt_tokens
            trace.completion_tokens = ctx.usage.completion_tokens
            trace.cached_tokens = ctx.usage.cached_tokens
        trace.usage_estimated = ctx.usage_estimated
        trace.cost_micros = ctx.cost_micros
        trace.cost_saved_micros = ctx.cost_saved_micros
        if body is not None:
            trace.model_served = body.get("model")
            choices = body.get("choices") or ()
            trace.finish_reason = choices[0].get("finish_reason") if choices else None
            if trace.finish_reason == "length":
                trace.malformed = TRUNCATED
            if check is not None and error is None and not disconnected:
                check.apply(trace)
        if disconnected and error is None:
            trace.status, trace.http_status = "error", _DISCONNECTED
            trace.error_type, trace.error_message = "client_disconnected", "client went away"
        self._finish(trace, ctx, req, error=error, body=body)

    def _finish(
        self,
        trace: TraceRecord,
        ctx: RequestContext,
        req: ChatRequest | EmbeddingRequest | None,
        *,
        error: OpsgateError | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        trace.duration_ms = (time.perf_counter() - ctx.t0) * 1000
        if ctx.principal is not None:
            trace.key_id = ctx.principal.key_id
            trace.user_id = ctx.principal.user_id
            trace.team_id = ctx.principal.team_id
        if error is not None:
            trace.status, trace.http_status = "error", error.status
            trace.error_type, trace.error_message = error.code, error.message
        output = "".join(ctx.output) if ctx.output is not None else None
        draw = self.publisher.draw(trace) if req is not None else None
        stored: dict[str, Any] | None = None
        if req is not None and (self.publisher.wants_output or draw is not None):
            sent = ctx.prompt.sent() if ctx.prompt is not None else None
            stored = _request_body(sent or req)  # stored, captured by OTel, or scored online
        detail = self._detail(ctx, req, body)
        masker = self.masker if self.mask_all or ctx.mask_bodies else None
        if masker is None or stored is None:
            self._publish(trace, detail, Bodies(stored, output), draw)
            return
        plain = Bodies(stored, output)
        self.publisher.deferred.submit(
            lambda: plain.masked(masker), lambda bodies: self._publish(trace, detail, bodies, draw)
        )

    def _detail(
        self,
        ctx: RequestContext,
        req: ChatRequest | EmbeddingRequest | None,
        body: dict[str, Any] | None,
    ) -> TraceDetail | None:
        """What OpenTelemetry gets beside the record; None when it is not on."""
        if self.publisher.tracer is None:
            return None
        dep = ctx.route.deployment
        return TraceDetail(
            headers=ctx.headers,
            params=req.params if req is not None else None,
            response_id=body.get("id") if body else None,
            server_url=(dep.config.base_url if dep is not None else None),
        )

    def _publish(
        self,
        trace: TraceRecord,
        detail: TraceDetail | None,
        bodies: Bodies,
        draw: Draw | None = None,
    ) -> None:
        if self.publisher.store_bodies and bodies.request is not None:
            trace.request_body = orjson.dumps(bodies.request)
            if bodies.output is not None:
                trace.response_body = bodies.output.encode()
        if detail is None:
            detail = _NO_DETAIL
        else:
            messages = bodies.request.get("messages") if bodies.request else None
            detail.messages = messages if trace.endpoint == "chat" else None
            detail.output = bodies.output
        if draw is None:
            self.publisher.publish(trace, detail)
            return
        self.publisher.publish(
            trace, detail, draw=draw, request=bodies.request, output=bodies.output
        )


@dataclass(frozen=True, slots=True)
class Bodies:
    """The request as stored and the answer's text (None: not kept)."""

    request: dict[str, Any] | None
    output: str | None

    def masked(self, masker: BodyMasker) -> Bodies:
        """PII replaced by placeholders (in a worker thread: `Deferred`). If masking fails the
        bodies are dropped, never kept unmasked; the trace itself is still stored."""
        try:
            request = masker.mask_body(self.request) if self.request is not None else None
            output = masker.mask_text(self.output) if self.output is not None else None
        except Exception:
            log.exception("could not mask the stored bodies; the trace is kept without them")
            return Bodies(None, None)
        return Bodies(request, output)


def _request_body(req: ChatRequest | EmbeddingRequest) -> dict[str, Any]:
    if isinstance(req, ChatRequest):
        return {"model": req.model, "messages": req.messages, **req.params}
    return {"model": req.model, "input": req.input, **req.params}


def _attempt_spans(ctx: RequestContext) -> list[SpanRecord]:
    spans = []
    for i, attempt in enumerate(ctx.route.attempts):
        attrs: dict[str, Any] = {
            "deployment": attempt.deployment,
            "model": attempt.group,
            "attempt": i + 1,
        }
        if attempt.error:
            attrs["error"] = attempt.error
            attrs["message"] = attempt.message
        spans.append(
            SpanRecord(
                span_id=f"{ctx.trace_id[:12]}{i:04x}",
                trace_id=ctx.trace_id,
                name="upstream_attempt",
                started_at=attempt.started,
                duration_ms=attempt.seconds * 1000,
                status="error" if attempt.error else "ok",
                attributes=attrs,
            )
        )
    return spans
