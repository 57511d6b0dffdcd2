"""Retrieval: the knowledge-base stage of the chat pipeline (RAG).

    ... → InputGuard → (JoinPrompt) → Retrieve → cache → OutputGuard → settle → route

A request names a knowledge base (`knowledge_base` in the body, stripped here, never sent
upstream) or a config binding gives it one. The stage searches it as the caller (the ACL is
applied inside the store's query), scans every chunk as untrusted text (injection: drop,
spotlight or block; PII redacted per policy), inserts the passages as one delimited system
message with numbered sources, and returns the answer with `citations`: a field of the JSON
body, or a final SSE chunk (`choices: []`) for a stream. It sits after the input guard, so the
guard judges what the caller wrote and this stage judges what the documents say, and before
the cache, so the cache key includes the passages sent. After the answer the grounding score is
queued (rag/grounding.py), off the request path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from opsgate.chat import ChatChunk, ChatResponse
from opsgate.config.rag import RagConfig
from opsgate.errors import BadRequestError
from opsgate.guard.service import GuardService
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.pipeline import Next
from opsgate.rag.context import citations, context_message, with_context
from opsgate.rag.grounding import GroundingJob, GroundingScorer
from opsgate.rag.request import KnowledgeRef, bound_ref, query_of, read_ref, split_request
from opsgate.rag.screen import Screened, screen
from opsgate.rag.service import KnowledgeService

HEADER = "x-opsgate-retrieval"
"""How many passages were sent to the model."""
THREAD_CHARS = 8_000
"""Passages with more text than this are scanned in a worker thread."""


class Retrieve:
    def __init__(
        self,
        service: KnowledgeService,
        config: RagConfig,
        guard: GuardService,
        grounding: GroundingScorer | None = None,
    ) -> None:
        self.service = service
        self.config = config
        self.guard = guard
        self.grounding = grounding if config.grounding.enabled else None

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        ctx = call.ctx
        request, raw = split_request(call.request)
        if raw is not None:
            ref: KnowledgeRef | None = read_ref(raw)
        else:
            ref = bound_ref(self.config.bindings, request.model, ctx.principal)
        if ref is None:  # the fast path: no knowledge base
            return await call_next(call)
        if ctx.principal is None:
            raise BadRequestError("knowledge bases need an authenticated caller")
        query = query_of(request.messages)
        if not query.strip():
            raise BadRequestError(
                "a request with a knowledge base needs a user message to search for",
                code="empty_query",
                param="messages",
            )
        started, t0 = time.time(), time.perf_counter()
        options = self.service.options(ref.top_k, mode=ref.mode, filters=ref.filters)
        base, found = await self.service.search(
            ctx.principal, ref.name, query, options, ref.team_id
        )
        screened = await self._screen(ctx, found.hits)
        passages = screened.passages
        self._note(ctx, ref, query, found.timings_ms, screened, started, t0)
        if passages:
            message = context_message(base.name, passages, self.config.max_context_chars)
            request = replace(request, messages=with_context(request.messages, message))
        cited = citations(base.name, passages)
        answer = await call_next(ChatCall(ctx, request))
        knowledge = "\n\n".join(p.text for p in passages)
        if isinstance(answer, ChatResponse):
            body = dict(answer.body)
            body["citations"] = cited
            self._ground(ctx, knowledge, query, answer.text)
            return ChatResponse(body)
        return self._stream(answer, ctx, cited, knowledge, query)

    async def _screen(self, ctx: RequestContext, hits: list[Any]) -> Screened:
        policy = self.guard.policy_for(ctx.principal)
        scanner = self.guard.injection
        if scanner is None:  # no policy scans for injection: the document path still does
            scanner = self.service.scanner(self.guard.config)
        pii = self.config.pii
        redacts = pii == "redact" or (pii == "inherit" and policy.pii == "redact")
        redact = self.guard.mask_text if redacts else None
        action = self.config.injection
        if scanner.offload or sum(len(h.text) for h in hits) > THREAD_CHARS:
            return await asyncio.to_thread(screen, hits, scanner, action, redact)
        return screen(hits, scanner, action, redact)

    def _note(
        self,
        ctx: RequestContext,
        ref: KnowledgeRef,
        query: str,
        timings: dict[str, float],
        screened: Screened,
        started: float,
        t0: float,
    ) -> None:
        ctx.response_headers[HEADER] = str(len(screened.passages))
        attributes: dict[str, object] = {
            "rag.knowledge_base": ref.name,
            "rag.query": self.guard.mask_text(query)[:500],
            "rag.hits": len(screened.passages),
            "rag.dropped": screened.dropped,
            "rag.flagged": screened.flagged,
            "rag.chunks": [
                f"{p.hit.path}#{p.hit.seq}:{p.hit.score:.4f}" for p in screened.passages
            ],
            **{f"rag.{name}_ms": round(ms, 3) for name, ms in timings.items()},
        }
        ctx.add_span("rtrv", "retrieval", started, t0, attributes=attributes)

    def _ground(self, ctx: RequestContext, knowledge: str, query: str, answer: str) -> None:
        if self.grounding is not None and knowledge and answer:
            self.grounding.submit(GroundingJob(ctx.trace_id, knowledge, query, answer))

    async def _stream(
        self,
        chunks: AsyncIterator[ChatChunk],
        ctx: RequestContext,
        cited: list[dict[str, Any]],
        knowledge: str,
        query: str,
    ) -> AsyncIterator[ChatChunk]:
        parts: list[str] = []
        last: dict[str, Any] = {}
        async for chunk in chunks:
            parts.append(chunk.text)
            last = chunk.body
            yield chunk
        yield ChatChunk(
            {
                "id": last.get("id", f"chatcmpl-{ctx.trace_id[:24]}"),
                "object": "chat.completion.chunk",
                "created": last.get("created", int(time.time())),
                "model": last.get("model", ""),
                "choices": [],
                "citations": cited,
            }
        )
        self._ground(ctx, knowledge, query, "".join(parts))
