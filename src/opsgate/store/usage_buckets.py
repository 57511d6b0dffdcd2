"""Per-minute usage buckets: how traces are folded into `usage_minute` rows (`aggregate`,
`bucket_rows`), and how the in-memory store rolls them up (`rollup`).

A bucket's counters simply sum and its latencies are counts per sketch bin (`store.histogram`),
so buckets from any number of batches and replicas add up exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opsgate.store.codec import clean_text
from opsgate.store.histogram import Sketch, batch_of, bin_of, encode_bins
from opsgate.store.tables.traces import LATENCY, USAGE_KEY
from opsgate.store.usage import VALUES, UsageQuery, UsageRow, minute_of, usage_rows
from opsgate.trace import TraceRecord

UsageKey = tuple[int, str, str, str, str, str, str, str, str, str]
"""(minute, model, deployment, key_id, team_id, end_user, status, prompt_name, prompt_version,
prompt_label), as in `USAGE_KEY`."""


@dataclass(slots=True)
class Totals:
    """One bucket as it is being summed: its counters and sums by name (`VALUES`), and its
    latencies (counts per sketch bin, least and greatest)."""

    sums: dict[str, float]
    bins: dict[int, int] = field(default_factory=dict)
    latency_ms_min: float = math.inf
    latency_ms_max: float = -math.inf

    def add(self, other: Totals) -> None:
        for name, value in other.sums.items():
            self.sums[name] += value
        self.add_latency(other)

    def add_latency(self, other: Totals) -> None:
        for b, count in other.bins.items():
            self.bins[b] = self.bins.get(b, 0) + count
        self.latency_ms_min = min(self.latency_ms_min, other.latency_ms_min)
        self.latency_ms_max = max(self.latency_ms_max, other.latency_ms_max)

    def sketch(self) -> Sketch:
        ordered = sorted(self.bins.items())
        return Sketch(
            tuple(b for b, _ in ordered),
            tuple(c for _, c in ordered),
            self.latency_ms_min,
            self.latency_ms_max,
        )

    def latency(self) -> tuple[float, float, str]:
        """The `LATENCY` columns as stored."""
        return self.latency_ms_min, self.latency_ms_max, encode_bins(self.bins)


_CACHE_HITS = frozenset({"hit-exact", "hit-semantic"})


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
        text(record.prompt_name),
        text(record.prompt_version),
        text(record.prompt_label),
    )


def empty_totals() -> Totals:
    return Totals(dict.fromkeys(VALUES, 0))


def add_record(bucket: Totals, record: TraceRecord) -> None:
    totals = bucket.sums
    totals["requests"] += 1
    totals["errors"] += record.status == "error"
    totals["prompt_tokens"] += record.prompt_tokens
    totals["completion_tokens"] += record.completion_tokens
    totals["cached_tokens"] += record.cached_tokens
    totals["cost_micros"] += record.cost_micros
    totals["cost_saved_micros"] += record.cost_saved_micros
    totals["cache_hits"] += record.cache in _CACHE_HITS
    totals["latency_ms_sum"] += record.duration_ms
    if record.ttft_ms is not None:
        totals["ttft_count"] += 1
        totals["ttft_ms_sum"] += record.ttft_ms
    latency = record.duration_ms
    b = bin_of(latency)
    bucket.bins[b] = bucket.bins.get(b, 0) + 1
    kept = latency if latency > 0 else 0.0  # what ZERO_BIN reads back as
    bucket.latency_ms_min = min(bucket.latency_ms_min, kept)
    bucket.latency_ms_max = max(bucket.latency_ms_max, kept)


def aggregate(records: Iterable[TraceRecord]) -> dict[UsageKey, Totals]:
    """Fold records into per-minute buckets, keyed and ordered by `UsageKey`."""
    buckets: dict[UsageKey, Totals] = {}
    for record in records:
        totals = buckets.setdefault(usage_key(record), empty_totals())
        add_record(totals, record)
    return dict(sorted(buckets.items()))


def bucket_rows(buckets: Mapping[UsageKey, Totals]) -> list[dict[str, object]]:
    """`usage_minute` rows for upserting, in key order (a stable lock order on PostgreSQL)."""
    return [
        {
            **dict(zip(USAGE_KEY, key, strict=True)),
            **totals.sums,
            **dict(zip(LATENCY, totals.latency(), strict=True)),
        }
        for key, totals in buckets.items()
    ]


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
        grouped.setdefault(slot, empty_totals()).add(totals)
    ordered = sorted(grouped.items())
    return usage_rows(
        [
            (bucket, dict(zip(query.group_by, values, strict=True)))
            for (bucket, values), _ in ordered
        ],
        [[totals.sums[name] for name in VALUES] for _, totals in ordered],
        batch_of([totals.sketch() for _, totals in ordered]),
    )
