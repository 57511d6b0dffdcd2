"""What the gateway keeps about each request: plain records, independent of any database.

The pipeline fills a `TraceRecord` per request and hands it to the background writer; storage
backends, exporters and queries all speak these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TraceStatus = Literal["ok", "error"]
CacheResult = Literal["hit-exact", "hit-semantic", "miss", "bypass"]


@dataclass(slots=True)
class SpanRecord:
    """A timed step inside a trace: an upstream attempt, a cache lookup, a guard check."""

    span_id: str
    trace_id: str
    name: str
    started_at: float
    """Epoch seconds."""
    duration_ms: float
    status: TraceStatus = "ok"
    parent_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TraceRecord:
    """One gateway request, as DESIGN.md's vocabulary describes a trace."""

    trace_id: str
    started_at: float
    """Epoch seconds."""
    duration_ms: float
    endpoint: Literal["chat", "embeddings"]
    model_requested: str
    status: TraceStatus = "ok"
    http_status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    ttft_ms: float | None = None
    model_served: str | None = None
    """The model id the upstream said it used."""
    deployment: str | None = None
    provider: str | None = None
    attempts: int = 0
    fallback: bool = False
    stream: bool = False
    key_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    end_user: str | None = None
    session_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    usage_estimated: bool = False
    cost_micros: int = 0
    """Cost in integer micro-dollars (1 USD = 1_000_000), so sums are exact."""
    cost_saved_micros: int = 0
    """On a cache hit: what the cached answer cost when it was made (the money saved)."""
    cache: CacheResult | None = None
    finish_reason: str | None = None
    prompt_version: str | None = None
    """The version number of the prompt that was rendered (as text), when one was."""
    prompt_name: str | None = None
    prompt_label: str | None = None
    """The label the request named (`production`), None when it named a version."""
    experiment: str | None = None
    """The experiment the request was in, when one assigned it a variant."""
    variant: str | None = None
    """The experiment's variant served."""
    logprob_mean: float | None = None
    """The answer's mean token log-probability, when the upstream returned logprobs: a
    confidence score (closer to 0 is surer)."""
    logprob_min: float | None = None
    """The least likely token's log-probability."""
    malformed: str | None = None
    """`truncated` (cut at finish_reason length) or `invalid_json` (not valid against the
    request's `response_format`); None for an answer that is neither."""
    guard_verdicts: list[dict[str, Any]] = field(default_factory=list)
    request_body: bytes | None = None
    """Stored per policy (off by default); encrypted at rest once guardrails land."""
    response_body: bytes | None = None
    spans: list[SpanRecord] = field(default_factory=list)
