"""Finished traces like the pipeline produces, for the telemetry tests."""

from __future__ import annotations

from dataclasses import fields

from opsgate.store import WriterStats
from opsgate.trace import SpanRecord, TraceRecord

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
STARTED = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def chat_trace(**overrides: object) -> TraceRecord:
    """A streamed chat request that failed once on one deployment and succeeded on another."""
    trace = TraceRecord(
        trace_id=TRACE_ID,
        started_at=STARTED,
        duration_ms=1500.0,
        endpoint="chat",
        model_requested="chat-default",
        model_served="gpt-4o-mini-2024-07-18",
        deployment="openai-mini",
        provider="openai",
        attempts=2,
        stream=True,
        ttft_ms=250.0,
        prompt_tokens=1200,
        completion_tokens=300,
        cached_tokens=1000,
        cost_micros=435,
        cache="miss",
        finish_reason="stop",
        session_id="sess-1",
        spans=[
            SpanRecord(
                span_id="a1",
                trace_id=TRACE_ID,
                name="upstream_attempt",
                started_at=STARTED + 0.01,
                duration_ms=400.0,
                status="error",
                attributes={
                    "deployment": "azure-mini",
                    "error": "rate_limited",
                    "provider": "azure",
                    "status_code": 429,
                    "server_url": "https://example-azure.invalid:8443/openai",
                },
            ),
            SpanRecord(
                span_id="a2",
                trace_id=TRACE_ID,
                name="upstream_attempt",
                started_at=STARTED + 0.5,
                duration_ms=990.0,
                attributes={"deployment": "openai-mini", "provider": "openai"},
            ),
        ],
    )
    for key, value in overrides.items():
        setattr(trace, key, value)
    return trace


def error_trace() -> TraceRecord:
    return TraceRecord(
        trace_id="0" * 31 + "1",
        started_at=STARTED,
        duration_ms=30_000.0,
        endpoint="chat",
        model_requested="chat-default",
        status="error",
        http_status=504,
        error_type="timeout",
        error_message="upstream timed out after retries",
        deployment="openai-mini",
        provider="openai",
        attempts=1,
    )


def embedding_trace() -> TraceRecord:
    return TraceRecord(
        trace_id="e" * 32,
        started_at=STARTED,
        duration_ms=40.0,
        endpoint="embeddings",
        model_requested="text-embedding-3-small",
        model_served="text-embedding-3-small",
        deployment="openai-embed",
        provider="openai",
        attempts=1,
        prompt_tokens=8,
        cost_micros=0,
        cache="hit-exact",
    )


def writer_stats(**values: float | bool) -> WriterStats:
    """The store writer's real stats snapshot, zero except for `values`."""
    defaults: dict[str, object] = {}
    for f in fields(WriterStats):
        defaults[f.name] = False if f.type in ("bool", bool) else 0
    defaults["store_healthy"] = True
    return WriterStats(**{**defaults, **values})  # type: ignore[arg-type]
