"""InputGuard and OutputGuard: the guard's two places in the chat pipeline.

    record → authenticate → admit → InputGuard → cache → OutputGuard → settle → route

- InputGuard sits before the cache: a blocked request is never answered from it, and redaction
  happens before the cache key is made, so neither the key nor the stored entry holds the
  caller's PII. It restores placeholders on the way out, after the cache, so a cached answer
  (which holds placeholders) is restored with each caller's own values.
- OutputGuard sits inside the cache: what gets cached is the checked answer, a blocked answer
  is never cached, and the per-request canary it adds to the system prompt never reaches the
  cache key.

Sensitivity always applies, whatever the policy: a caller's `x-opsgate-sensitivity: sensitive`
must never be ignored because guardrails are off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

from opsgate.chat import ChatChunk, ChatResponse
from opsgate.config.guard import GuardPolicy
from opsgate.errors import BadRequestError, ServiceUnavailableError
from opsgate.guard.canary import new_canary, with_canary
from opsgate.guard.content import has_marks, text_size, unmarked
from opsgate.guard.inspection import InputResult, inspect
from opsgate.guard.output import OutputScreen, OutputTally
from opsgate.guard.policy import checks_output, scans_input
from opsgate.guard.redact import Redaction, StreamRestorer
from opsgate.guard.service import GuardService
from opsgate.guard.stream import filter_response, filter_stream
from opsgate.guard.verdicts import Verdict
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.pipeline import Next
from opsgate.trace import TraceStatus

log = logging.getLogger("opsgate.guard")
SENSITIVITY_HEADER = "x-opsgate-sensitivity"
_SENSITIVE = frozenset({"sensitive", "private"})
_ORDINARY = frozenset({"", "public", "normal", "none"})
THREAD_CHARS = 16_384
"""Requests with more text than this (a quarter of it with the injection model on) are checked
in a worker thread, off the event loop; smaller ones cost less than the hop to a thread
(~0.1-0.7 ms of scanning, measured)."""


def sensitivity(ctx: RequestContext, metadata_key: str) -> str | None:
    """Why the caller marked the request sensitive (`header` / `metadata`), or None."""
    raw = ctx.headers.get(SENSITIVITY_HEADER)
    if raw is not None:
        value = raw.strip().lower()
        if value in _SENSITIVE:
            return "header"
        if value not in _ORDINARY:
            raise BadRequestError(
                f"header {SENSITIVITY_HEADER} must be `sensitive`, `private` or `public`",
                code="invalid_header",
                param=SENSITIVITY_HEADER,
            )
    label = ctx.labels.metadata.get(metadata_key)
    if label is not None and label.strip().lower() in _SENSITIVE:
        return "metadata"
    return None


def mark_sensitive(ctx: RequestContext, service: GuardService, verdicts: list[Verdict]) -> None:
    ctx.sensitive = True
    ctx.route.require_tags = frozenset(service.config.sensitivity.private_tags)
    ctx.guard_verdicts.extend(verdicts)


class EmbeddingSensitivity:
    """The embeddings pipeline's guard: only the caller's sensitivity mark (header or metadata
    label) is honoured there; embedding inputs are not scanned."""

    def __init__(self, service: GuardService) -> None:
        self.service = service

    async def __call__(self, call: Any, call_next: Next[Any, Any]) -> Any:
        reason = sensitivity(call.ctx, self.service.config.sensitivity.metadata_key)
        if reason is not None:
            verdict = Verdict("sensitivity", "input", "route", ((reason, 1),))
            mark_sensitive(call.ctx, self.service, [verdict])
        return await call_next(call)


class InputGuard:
    def __init__(self, service: GuardService) -> None:
        self.service = service

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        ctx, req = call.ctx, call.request
        if self.service.schemas:  # the model's own input schema, whatever the caller's policy
            checked = self.service.schemas.check(req.model, req.messages)
            if checked is not None:
                ctx.guard_verdicts.append(checked.verdict)
                if checked.error is not None:
                    raise checked.error
        reason = sensitivity(ctx, self.service.config.sensitivity.metadata_key)
        policy = self.service.policy_for(ctx.principal)
        if reason is None and not scans_input(policy):  # the fast path: guard off
            if has_marks(req.messages):
                call = ChatCall(ctx, replace(req, messages=unmarked(req.messages)))
            return await call_next(call)
        started, t0 = time.time(), time.perf_counter()
        result = await self._inspect(policy, req.messages, reason)
        self._note(ctx, policy, result, started, t0)
        if result.error is not None:
            raise result.error
        messages = result.messages
        if messages is None and has_marks(req.messages):
            messages = unmarked(req.messages)
        if messages is not None:
            call = ChatCall(ctx, replace(req, messages=messages))
        answer = await call_next(call)
        if result.redaction is None or not policy.restore:
            return answer
        return _restore(answer, result.redaction)

    async def _inspect(
        self, policy: GuardPolicy, messages: list[Any], reason: str | None
    ) -> InputResult:
        tools = self.service.tools(policy)
        if not scans_input(policy):  # only the caller's sensitivity mark: nothing to scan
            return inspect(policy, messages, tools, sensitive=reason)
        limit = THREAD_CHARS // 4 if tools.injection is not None else THREAD_CHARS
        offload = (tools.injection is not None and tools.injection.offload) or (
            tools.detector is not None and tools.detector.offload
        )
        try:
            if offload or text_size(messages) > limit:
                return await asyncio.to_thread(inspect, policy, messages, tools, sensitive=reason)
            return inspect(policy, messages, tools, sensitive=reason)
        except Exception:  # a bug in a detector: refuse clearly rather than pass unchecked
            log.exception("guard input check failed")
            raise ServiceUnavailableError(
                "the guard could not check this request; try again", code="guard_unavailable"
            ) from None

    def _note(
        self,
        ctx: RequestContext,
        policy: GuardPolicy,
        result: InputResult,
        started: float,
        t0: float,
    ) -> None:
        """Verdicts, routing restriction, body masking, the span and the monitor."""
        ctx.guard_verdicts.extend(result.verdicts)
        ctx.guard_seen = result.seen
        ctx.mask_bodies |= result.mask_bodies
        if result.sensitive:
            mark_sensitive(ctx, self.service, [])
        _add_span(ctx, "guard_input", "gi", started, t0, result.verdicts)
        if ctx.principal is not None and scans_input(policy):
            self.service.monitor.observe(ctx.principal.key_id, result.verdicts)


def _restore(answer: ChatResult, redaction: Redaction) -> ChatResult:
    if isinstance(answer, ChatResponse):
        return filter_response(answer, lambda: StreamRestorer(redaction))
    return filter_stream(answer, lambda: StreamRestorer(redaction))


class OutputGuard:
    def __init__(self, service: GuardService) -> None:
        self.service = service

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        ctx = call.ctx
        policy = self.service.policy_for(ctx.principal)
        if not checks_output(policy):
            return await call_next(call)
        canary = new_canary() if policy.canary else None
        if canary is not None:
            call = ChatCall(
                ctx, replace(call.request, messages=with_canary(call.request.messages, canary))
            )
        detector = self.service.output_detector(policy)
        tally = OutputTally()

        def screen() -> OutputScreen:
            return OutputScreen(
                policy, tally, canary=canary, detector=detector, seen=ctx.guard_seen
            )

        offload = detector is not None and detector.offload
        answer = await call_next(call)
        if not isinstance(answer, ChatResponse):
            filtered = filter_stream(answer, screen, offload=offload)
            return self._watch(filtered, ctx, policy, tally)
        started, t0 = time.time(), time.perf_counter()
        try:
            if offload:  # Presidio: tens of milliseconds, not on the event loop
                return await asyncio.to_thread(filter_response, answer, screen)
            return filter_response(answer, screen)
        finally:
            self._done(ctx, policy, tally, started, t0)

    async def _watch(
        self,
        chunks: AsyncGenerator[ChatChunk, None],
        ctx: RequestContext,
        policy: GuardPolicy,
        tally: OutputTally,
    ) -> AsyncGenerator[ChatChunk, None]:
        started, t0 = time.time(), time.perf_counter()
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()
            self._done(ctx, policy, tally, started, t0)

    def _done(
        self,
        ctx: RequestContext,
        policy: GuardPolicy,
        tally: OutputTally,
        started: float,
        t0: float,
    ) -> None:
        verdicts = tally.verdicts(policy)
        ctx.guard_verdicts.extend(verdicts)
        if tally.canary:  # a breach whoever the caller: with no keys configured, "-"
            key = ctx.principal.key_id if ctx.principal is not None else "-"
            self.service.monitor.leaked(key, ctx.trace_id)
        if verdicts:
            ctx.mask_bodies = True  # the stored answer must not keep what was caught
        _add_span(ctx, "guard_output", "go", started, t0, verdicts)


def _add_span(
    ctx: RequestContext, name: str, tag: str, started: float, t0: float, verdicts: list[Verdict]
) -> None:
    blocked = any(v.action == "block" for v in verdicts)
    attributes = {"verdicts": [v.to_json() for v in verdicts]} if verdicts else {}
    status: TraceStatus = "error" if blocked else "ok"
    ctx.add_span(f"{tag}00", name, started, t0, status=status, attributes=attributes)
