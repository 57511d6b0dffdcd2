"""Usage rollups, the question and the answer: a `UsageQuery` (buckets of `step` seconds
between two times, grouped and filtered by dimensions) and the `UsageRow`s every backend answers
it with, percentiles read off merged latency sketches (`store.histogram`).

Dashboards and budgets ask "requests, tokens, cost and p95 latency per hour per model (or key,
team, user)". Answering that by scanning a million traces is too slow, so every write also adds
its traces into per-minute buckets (`usage_buckets`) whose counters simply sum and whose
latency sketches merge, rolled up into hour and day tables (`usage_levels`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opsgate.store.histogram import Batch, Sketch, batch_of
from opsgate.store.tables.traces import USAGE_COUNTERS, USAGE_SUMS

UsageDimension = Literal[
    "model",
    "deployment",
    "key_id",
    "team_id",
    "end_user",
    "status",
    "prompt_name",
    "prompt_version",
    "prompt_label",
]
DIMENSIONS: tuple[UsageDimension, ...] = (
    "model",
    "deployment",
    "key_id",
    "team_id",
    "end_user",
    "status",
    "prompt_name",
    "prompt_version",
    "prompt_label",
)


VALUES: tuple[str, ...] = (*USAGE_COUNTERS, *USAGE_SUMS)
"""The summed columns, in table order after the key (then come the `LATENCY` columns)."""


def minute_of(epoch_seconds: float) -> int:
    return int(epoch_seconds // 60) * 60


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """A rollup: buckets `step` seconds wide between `since` and `until`, grouped by dimensions."""

    since: float
    """Epoch seconds, inclusive (the minute it falls in counts)."""
    until: float
    """Epoch seconds, exclusive."""
    step: int = 3600
    """Bucket width in seconds, a multiple of 60, aligned to the epoch (UTC)."""
    group_by: tuple[UsageDimension, ...] = ()
    filters: Mapping[UsageDimension, str] = field(default_factory=dict)
    """Exact matches; '' selects rows where the value was absent."""

    def __post_init__(self) -> None:
        if self.step <= 0 or self.step % 60:
            raise ValueError("step must be a positive multiple of 60 seconds")
        unknown = set(self.group_by) | set(self.filters)
        if not unknown <= set(DIMENSIONS):
            raise ValueError(f"unknown usage dimensions: {sorted(unknown - set(DIMENSIONS))}")


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One rollup bucket; latency percentiles are read off its merged sketch
    (`histogram.percentiles`: within 1% of the true value, clamped to the recorded min/max)."""

    bucket: int
    """Epoch seconds at the start of the bucket."""
    group: dict[str, str]
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_micros: int
    cost_saved_micros: int
    """What the cache hits in the bucket would have cost."""
    cache_hits: int
    latency_ms_avg: float | None
    ttft_ms_avg: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    latency_ms_min: float | None
    latency_ms_max: float | None
    latency: Sketch
    ttft_count: int = 0
    latency_ms_sum: float = 0.0
    ttft_ms_sum: float = 0.0
    """The raw sums behind the averages, so rows can be combined exactly (`combine`)."""

    def values(self) -> list[float]:
        """The row's totals in `VALUES` order (what the usage tables store)."""
        return [getattr(self, name) for name in VALUES]


EMPTY = Sketch()


def combine(rows: Sequence[UsageRow], bucket: int = 0) -> UsageRow | None:
    """One row for the sum of `rows` (say, a range's total from its buckets), exactly as the
    store would have answered a query for it; None for no rows."""
    if not rows:
        return None
    summed = [sum(column) for column in zip(*(row.values() for row in rows), strict=True)]
    merged = rows[0].latency.merge(*(row.latency for row in rows[1:]))
    return usage_rows([(bucket, {})], [summed], batch_of([merged]))[0]


def usage_row(
    bucket: int, group: dict[str, str], totals: Mapping[str, float], latency: Sketch = EMPTY
) -> UsageRow:
    """Turn summed totals (and their latency sketch) into a `UsageRow`."""
    values = [[totals[name] for name in VALUES]]
    return usage_rows([(bucket, group)], values, batch_of([latency]))[0]


_AT = {name: index for index, name in enumerate(VALUES)}
PERCENTILES = (0.50, 0.95, 0.99)


def usage_rows(
    keys: Sequence[tuple[int, dict[str, str]]],
    values: Sequence[Sequence[Any]],
    latencies: Batch,
) -> list[UsageRow]:
    """Turn summed totals (in `VALUES` order) and merged sketches into `UsageRow`s, percentiles
    for all rows at once (shared by every backend, so they answer alike)."""
    if not keys:
        return []
    estimates = latencies.percentiles(PERCENTILES)
    return [
        _row(bucket, group, row, sketch, p)
        for (bucket, group), row, sketch, p in zip(
            keys, values, latencies.sketches(), estimates, strict=True
        )
    ]


def _row(
    bucket: int, group: dict[str, str], row: Sequence[Any], sketch: Sketch, p: list[float | None]
) -> UsageRow:
    requests, ttft_count = int(row[_AT["requests"]]), int(row[_AT["ttft_count"]])
    p50, p95, p99 = p
    seen = bool(sketch.bins)
    return UsageRow(
        bucket=bucket,
        group=group,
        requests=requests,
        errors=int(row[_AT["errors"]]),
        prompt_tokens=int(row[_AT["prompt_tokens"]]),
        completion_tokens=int(row[_AT["completion_tokens"]]),
        cached_tokens=int(row[_AT["cached_tokens"]]),
        cost_micros=int(row[_AT["cost_micros"]]),
        cost_saved_micros=int(row[_AT["cost_saved_micros"]]),
        cache_hits=int(row[_AT["cache_hits"]]),
        latency_ms_avg=float(row[_AT["latency_ms_sum"]]) / requests if requests else None,
        ttft_ms_avg=float(row[_AT["ttft_ms_sum"]]) / ttft_count if ttft_count else None,
        latency_ms_p50=p50,
        latency_ms_p95=p95,
        latency_ms_p99=p99,
        latency_ms_min=sketch.min_ms if seen else None,
        latency_ms_max=sketch.max_ms if seen else None,
        latency=sketch,
        ttft_count=ttft_count,
        latency_ms_sum=float(row[_AT["latency_ms_sum"]]),
        ttft_ms_sum=float(row[_AT["ttft_ms_sum"]]),
    )
