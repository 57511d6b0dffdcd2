"""A trace's spans laid out as a timeline: where each bar starts and how wide it is, in per
cent of the request, so the template draws it as plain SVG (no script, no inline style)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsgate.trace import TraceRecord

MIN_WIDTH_PCT = 0.4
"""A sub-millisecond span still gets a visible sliver."""


@dataclass(frozen=True, slots=True)
class Bar:
    name: str
    status: str
    offset_ms: float
    duration_ms: float
    x_pct: float
    width_pct: float
    depth: int
    """0 for the request itself, 1 for its spans, 2 for a span's children ..."""
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Timeline:
    total_ms: float
    bars: list[Bar]


def _depths(record: TraceRecord) -> dict[str, int]:
    parents = {s.span_id: s.parent_id for s in record.spans}
    depths: dict[str, int] = {}
    for span_id in parents:
        depth, seen, node = 1, {span_id}, parents[span_id]
        while node is not None and node in parents and node not in seen:
            depth, node = depth + 1, parents[node]
            seen.add(node or "")
        depths[span_id] = depth
    return depths


def layout(record: TraceRecord) -> Timeline:
    """The request as the first bar, then its spans in start order."""
    start = record.started_at
    spans = sorted(record.spans, key=lambda s: (s.started_at, s.span_id))
    ends = [(s.started_at - start) * 1000 + s.duration_ms for s in spans]
    total = max([record.duration_ms, *ends, 0.001])

    def bar(name: str, status: str, offset: float, duration: float, depth: int, attrs: Any) -> Bar:
        offset = min(max(offset, 0.0), total)
        x = offset / total * 100
        width = max(duration / total * 100, MIN_WIDTH_PCT)
        width = round(min(width, 100 - x), 3)
        return Bar(name, status, offset, duration, round(x, 3), width, depth, dict(attrs))

    depths = _depths(record)
    bars = [bar(f"{record.endpoint} request", record.status, 0.0, record.duration_ms, 0, {})]
    for span in spans:
        offset = (span.started_at - start) * 1000
        depth = depths.get(span.span_id, 1)
        bars.append(bar(span.name, span.status, offset, span.duration_ms, depth, span.attributes))
    return Timeline(total, bars)
