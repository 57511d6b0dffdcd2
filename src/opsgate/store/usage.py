"""Per-minute usage buckets: how traces are folded into `usage_minute`, and how rollups read back.

Dashboards and budgets ask "requests, tokens, cost and p95 latency per hour per model (or key,
team, user)". Answering that by scanning a million traces is too slow, so every write also adds
its traces into per-minute buckets whose counters (and latency histogram) simply sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from opsgate.store import histogram
from opsgate.store.codec import clean_text
from opsgate.store.records import TraceRecord
from opsgate.store.schema import USAGE_COUNTERS, USAGE_KEY, USAGE_SUMS

UsageDimension = Literal["model", "deployment", "key_id", "team_id", "end_user", "status"]
DIMENSIONS: tuple[UsageDimension, ...] = (
    "model",
    "deployment",
    "key_id",
    "team_id",
    "end_user",
    "status",
)

UsageKey = tuple[int, str, str, str, str, str, str]
"""(minute, model, deployment, key_id, team_id, end_user, status), as in `USAGE_KEY`."""

Totals = dict[str, float]
"""Counter name -> value, for the names in `USAGE_COUNTERS` and `USAGE_SUMS`."""

_CACHE_HITS = frozenset({"hit-exact", "hit-semantic"})


def minute_of(epoch_seconds: float) -> int:
    return int(epoch_seconds // 60) * 60


def usage_key(record: TraceRecord) -> UsageKey:
    def text(value: str | None) -> str:
        return clean_text(value) if value else ""

    return (
        minute_of(record.started_at),
        text(record.model_requested),
        text(record.deployment),
        text(record.key_id),
        text(record.team_id),
        text(record.end_user),
        text(record.status),
    )


def empty_totals() -> Totals:
    return dict.fromkeys((*USAGE_COUNTERS, *USAGE_SUMS), 0)


def add_record(totals: Totals, record: TraceRecord) -> None:
    totals["requests"] += 1
    totals["errors"] += record.status == "error"
    totals["prompt_tokens"] += record.prompt_tokens
    totals["completion_tokens"] += record.completion_tokens
    totals["cached_tokens"] += record.cached_tokens
    totals["cost_micros"] += record.cost_micros
    totals["cache_hits"] += record.cache in _CACHE_HITS
    totals["latency_ms_sum"] += record.duration_ms
    if record.ttft_ms is not None:
        totals["ttft_count"] += 1
        totals["ttft_ms_sum"] += record.ttft_ms
    totals[histogram.COLUMNS[histogram.bucket_of(record.duration_ms)]] += 1


def aggregate(records: Iterable[TraceRecord]) -> dict[UsageKey, Totals]:
    """Fold records into per-minute buckets, keyed and ordered by `UsageKey`."""
    buckets: dict[UsageKey, Totals] = {}
    for record in records:
        totals = buckets.setdefault(usage_key(record), empty_totals())
        add_record(totals, record)
    return dict(sorted(buckets.items()))


def bucket_rows(buckets: Mapping[UsageKey, Totals]) -> list[dict[str, object]]:
    """`usage_minute` rows for upserting, in key order (a stable lock order on PostgreSQL)."""
    return [{**dict(zip(USAGE_KEY, key, strict=True)), **totals} for key, totals in buckets.items()]


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
    """One rollup bucket; latencies are estimated from the summed histogram."""

    bucket: int
    """Epoch seconds at the start of the bucket."""
    group: dict[str, str]
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_micros: int
    cache_hits: int
    latency_ms_avg: float | None
    ttft_ms_avg: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    histogram: tuple[int, ...]


def usage_row(bucket: int, group: dict[str, str], totals: Mapping[str, float]) -> UsageRow:
    """Turn summed totals into a `UsageRow` (shared by every backend so they answer alike)."""
    counts = tuple(int(totals[name]) for name in histogram.COLUMNS)
    requests = int(totals["requests"])
    ttft_count = int(totals["ttft_count"])
    return UsageRow(
        bucket=bucket,
        group=group,
        requests=requests,
        errors=int(totals["errors"]),
        prompt_tokens=int(totals["prompt_tokens"]),
        completion_tokens=int(totals["completion_tokens"]),
        cached_tokens=int(totals["cached_tokens"]),
        cost_micros=int(totals["cost_micros"]),
        cache_hits=int(totals["cache_hits"]),
        latency_ms_avg=float(totals["latency_ms_sum"]) / requests if requests else None,
        ttft_ms_avg=float(totals["ttft_ms_sum"]) / ttft_count if ttft_count else None,
        latency_ms_p50=histogram.quantile(counts, 0.50),
        latency_ms_p95=histogram.quantile(counts, 0.95),
        latency_ms_p99=histogram.quantile(counts, 0.99),
        histogram=counts,
    )


def rollup(buckets: Mapping[UsageKey, Totals], query: UsageQuery) -> list[UsageRow]:
    """Roll per-minute buckets up in Python (the in-memory store's answer to `usage`)."""
    start, until = minute_of(query.since), query.until
    grouped: dict[tuple[int, tuple[str, ...]], Totals] = {}
    for key, totals in buckets.items():
        named = dict(zip(USAGE_KEY, key, strict=True))
        minute = key[0]
        if not start <= minute < until:
            continue
        if any(named[dim] != value for dim, value in query.filters.items()):
            continue
        slot = (minute - minute % query.step, tuple(str(named[dim]) for dim in query.group_by))
        target = grouped.setdefault(slot, empty_totals())
        for name, value in totals.items():
            target[name] += value
    return [
        usage_row(bucket, dict(zip(query.group_by, values, strict=True)), totals)
        for (bucket, values), totals in sorted(grouped.items())
    ]
