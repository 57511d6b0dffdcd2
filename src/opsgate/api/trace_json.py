"""JSON shapes of the trace and usage admin API: one function per object, no I/O."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from opsgate.accounting.cost import micros_to_usd
from opsgate.store.codec import body_json
from opsgate.store.usage import UsageRow
from opsgate.trace import SpanRecord, TraceRecord


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def usd(micros: int) -> str:
    """Exact USD as a decimal string with six places ("0.001234"), never a float."""
    return f"{micros_to_usd(micros):.6f}"


_NOT_SUMMARY = frozenset({"trace_id", "request_body", "response_body", "spans"})


def trace_summary(record: TraceRecord) -> dict[str, Any]:
    """Every stored field but the bodies and spans, plus the cost in USD."""
    data: dict[str, Any] = {"object": "trace", "id": record.trace_id}
    for f in dataclasses.fields(TraceRecord):
        if f.name not in _NOT_SUMMARY:
            data[f.name] = getattr(record, f.name)
    data["started_at_iso"] = iso(record.started_at)
    data["total_tokens"] = record.prompt_tokens + record.completion_tokens
    data["cost_usd"] = usd(record.cost_micros)
    return data


def span_json(span: SpanRecord) -> dict[str, Any]:
    return {
        "object": "trace.span",
        "id": span.span_id,
        "parent_id": span.parent_id,
        "name": span.name,
        "started_at": span.started_at,
        "duration_ms": span.duration_ms,
        "status": span.status,
        "attributes": span.attributes,
    }


def trace_detail(record: TraceRecord, *, include_bodies: bool) -> dict[str, Any]:
    data = trace_summary(record)
    data["spans"] = [span_json(s) for s in record.spans]
    data["has_request_body"] = record.request_body is not None
    data["has_response_body"] = record.response_body is not None
    if include_bodies:
        data["request_body"] = body_json(record.request_body)
        data["response_body"] = body_json(record.response_body)
    return data


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _ms(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def usage_json(row: UsageRow, bucket: str) -> dict[str, Any]:
    timed = bucket != "none"
    return {
        "object": "usage.bucket",
        "bucket": iso(row.bucket) if timed else None,
        "bucket_start": row.bucket if timed else None,
        "group": {name: value or None for name, value in row.group.items()},
        "requests": row.requests,
        "errors": row.errors,
        "error_rate": _rate(row.errors, row.requests),
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cached_tokens": row.cached_tokens,
        "total_tokens": row.prompt_tokens + row.completion_tokens,
        "cost_usd": usd(row.cost_micros),
        "cost_micros": row.cost_micros,
        "cost_saved_usd": usd(row.cost_saved_micros),
        "cost_saved_micros": row.cost_saved_micros,
        "latency_ms_avg": _ms(row.latency_ms_avg),
        "latency_ms_p50": _ms(row.latency_ms_p50),
        "latency_ms_p95": _ms(row.latency_ms_p95),
        "latency_ms_p99": _ms(row.latency_ms_p99),
        "latency_ms_min": _ms(row.latency_ms_min),
        "latency_ms_max": _ms(row.latency_ms_max),
        "ttft_ms_avg": _ms(row.ttft_ms_avg),
        "cache_hits": row.cache_hits,
        "cache_hit_rate": _rate(row.cache_hits, row.requests),
    }


# --- handlers --------------------------------------------------------------------------------
