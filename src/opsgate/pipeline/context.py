"""The context one request carries through the pipeline's stages."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from opsgate.access.principal import Principal
from opsgate.chat import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, Usage
from opsgate.errors import BadRequestError
from opsgate.experiments.best_of.plan import BestOfPlan
from opsgate.experiments.registry import Assignment
from opsgate.guard.verdicts import Verdict
from opsgate.identity import NO_LABELS, CallerLabels
from opsgate.prompts.request import PromptUse
from opsgate.routing.router import RouteState
from opsgate.trace import CacheResult, SpanRecord, TraceStatus
from opsgate.types import JSONObject

ChatResult = ChatResponse | AsyncIterator[ChatChunk]
"""What a chat pipeline returns: a whole answer, or a stream of chunks."""


def new_trace_id() -> str:
    """32 random hex digits: a valid W3C trace id, and cheaper than building a UUID object."""
    return os.urandom(16).hex()


@dataclass(slots=True)
class RequestContext:
    """Shared by every stage of one request; nothing in it knows the HTTP framework."""

    headers: Mapping[str, str]
    """Incoming request headers, lower-cased."""
    trace_id: str = field(default_factory=new_trace_id)
    started: float = field(default_factory=time.time)
    """Epoch seconds, for the record."""
    t0: float = field(default_factory=time.perf_counter)
    """A monotonic start, for durations."""
    principal: Principal | None = None
    route: RouteState = field(init=False)
    usage: Usage | None = None
    usage_estimated: bool = False
    cost_micros: int = 0
    output: list[str] | None = None
    """The completion's text pieces, kept only when something needs the text (bodies, OTel)."""
    response_headers: dict[str, str] = field(default_factory=dict)
    cache: CacheResult | None = None
    """Set by the cache stage: hit-exact, hit-semantic, miss or bypass."""
    cache_similarity: float | None = None
    tokens_saved: int = 0
    """On a cache hit: the tokens (prompt + completion) the cached answer took to make."""
    cost_saved_micros: int = 0
    spans: list[SpanRecord] = field(default_factory=list)
    """Timed steps recorded by stages (cache lookup, ...), added to the trace."""
    labels: CallerLabels = NO_LABELS
    """The caller's end user, session and metadata, read and validated once by Record."""
    sensitive: bool = False
    """Set by the input guard: only deployments with a private tag may serve the request."""
    guard_verdicts: list[Verdict] = field(default_factory=list)
    guard_seen: frozenset[str] = frozenset()
    """Values the input guard found in the request (the caller's own, not an output leak)."""
    mask_bodies: bool = False
    """Stored bodies of this request get PII replaced by placeholders (guard policy)."""
    prompt: PromptUse | None = None
    """Set by RenderPrompt: the prompt version the request rendered, for the trace."""
    experiment: Assignment | None = None
    """Set by AssignVariant: the experiment and variant the request is served, for the trace."""
    best_of: BestOfPlan | None = None
    """Set by PlanBestOf: the request is answered by the best of n candidates (Admit holds
    the worst case of all n; BestOfN runs them)."""

    def __post_init__(self) -> None:
        self.route = RouteState(trace_id=self.trace_id)

    def add_span(
        self,
        suffix: str,
        name: str,
        started: float,
        t0: float,
        *,
        status: TraceStatus = "ok",
        attributes: Mapping[str, object] | None = None,
    ) -> None:
        """Record a stage's timed step (since `t0`); its id is the trace id's first 12
        characters and a 4-character `suffix` the stage makes unique."""
        span = SpanRecord(
            span_id=f"{self.trace_id[:12]}{suffix}",
            trace_id=self.trace_id,
            name=name,
            started_at=started,
            duration_ms=(time.perf_counter() - t0) * 1000,
            status=status,
            attributes=dict(attributes or {}),
        )
        self.spans.append(span)

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return self.headers.get("api-key") or self.headers.get("x-api-key") or None


@dataclass(slots=True)
class ChatCall:
    ctx: RequestContext
    request: ChatRequest


@dataclass(slots=True)
class EmbeddingCall:
    ctx: RequestContext
    request: EmbeddingRequest


EmbeddingResult = JSONObject


def request_timeout(headers: Mapping[str, str]) -> float | None:
    """A per-request timeout from `x-opsgate-timeout` (seconds)."""
    raw = headers.get("x-opsgate-timeout")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise BadRequestError(
            "header x-opsgate-timeout must be a positive number of seconds",
            code="invalid_header",
            param="x-opsgate-timeout",
        )
    return value
