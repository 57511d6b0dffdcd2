"""Per-minute usage buckets: how traces are folded into `usage_minute`, and how rollups read back.

Dashboards and budgets ask "requests, tokens, cost and p95 latency per hour per model (or key,
team, user)". Answering that by scanning a million traces is too slow, so every write also adds
its traces into per-minute buckets whose counters simply sum and whose latency sketches
(`store.histogram`) merge.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy import Table

from opsgate.store.codec import clean_text
from opsgate.store.histogram import Batch, Sketch, batch_of, bin_of, encode_bins
from opsgate.store.tables.traces import (
    LATENCY,
    USAGE_COUNTERS,
    USAGE_KEY,
    USAGE_SUMS,
    usage_day,
    usage_day_keys,
    usage_day_prompts,
    usage_day_users,
    usage_hour,
    usage_hour_keys,
    usage_hour_prompts,
    usage_hour_users,
    usage_minute,
)
from opsgate.trace import TraceRecord

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


@dataclass(frozen=True, slots=True)
class Level:
    """One usage table: its period column and width, and the dimensions it keeps."""

    table: Table
    period: str
    seconds: int
    dims: tuple[str, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return (self.period, *self.dims)

    def answers(self, query: UsageQuery) -> bool:
        return query.step % self.seconds == 0 and set(query.group_by) | set(query.filters) <= set(
            self.dims
        )


def _level(table: Table, seconds: int) -> Level:
    period, *dims = (c.name for c in table.primary_key.columns)
    return Level(table, period, seconds, tuple(dims))


LEVELS: tuple[Level, ...] = (
    _level(usage_day_keys, 86_400),
    _level(usage_day_users, 86_400),
    _level(usage_day, 86_400),
    _level(usage_day_prompts, 86_400),
    _level(usage_hour_keys, 3_600),
    _level(usage_hour_users, 3_600),
    _level(usage_hour, 3_600),
    _level(usage_hour_prompts, 3_600),
    _level(usage_minute, 60),
)
"""Every write adds to all of them; a rollup reads, per period (coarsest first), the first
table here that keeps the dimensions it names. Within a period they are listed smallest first
(keys and teams are few, end users more, the full key multiplies them); the `*_prompts` tables
come last, for the queries that name a prompt dimension."""

_POSITIONS = {dim: USAGE_KEY.index(dim) for dim in USAGE_KEY}


def fold(
    buckets: Mapping[UsageKey, Totals], levels: Sequence[Level] = LEVELS
) -> list[tuple[Level, list[tuple[Any, ...]]]]:
    """Each level's rows for a batch's per-minute buckets, counters summed with numpy (the
    writer does this for every batch; adding them per bucket per level in Python cost more than
    the rest of the batch's row building) and latency sketches merged.

    `buckets` must be in key order, as `aggregate` returns them: the per-minute rows keep that
    order (a stable lock order on PostgreSQL) and are not sorted again here.
    """
    keys = list(buckets)
    if not keys:
        return [(level, []) for level in levels]
    totals = [buckets[key] for key in keys]
    values = [_values(t.sums) for t in totals]
    counters = np.array([v[:_N_COUNTERS] for v in values], dtype=np.int64).reshape(len(keys), -1)
    sums = np.array([v[_N_COUNTERS:] for v in values], dtype=np.float64).reshape(len(keys), -1)
    out = []
    for level in levels:
        if level.key == USAGE_KEY:
            rows = [
                (*key, *value, *t.latency())
                for key, value, t in zip(keys, values, totals, strict=True)
            ]
            out.append((level, rows))
            continue
        picks = [_POSITIONS[dim] for dim in level.dims]
        slots: dict[tuple[Any, ...], int] = {}
        index = [
            slots.setdefault(
                (key[0] - key[0] % level.seconds, *(key[i] for i in picks)), len(slots)
            )
            for key in keys
        ]
        summed_counters = np.zeros((len(slots), counters.shape[1]), dtype=np.int64)
        summed_sums = np.zeros((len(slots), sums.shape[1]), dtype=np.float64)
        np.add.at(summed_counters, index, counters)
        np.add.at(summed_sums, index, sums)
        latencies = [Totals({}) for _ in slots]
        for slot, t in zip(index, totals, strict=True):
            latencies[slot].add_latency(t)
        rows = [
            (*key, *c, *f, *lat.latency())
            for key, c, f, lat in zip(
                slots, summed_counters.tolist(), summed_sums.tolist(), latencies, strict=True
            )
        ]
        rows.sort()
        out.append((level, rows))
    return out


_values = operator.itemgetter(*VALUES)
_N_COUNTERS = len(USAGE_COUNTERS)


@dataclass(frozen=True, slots=True)
class Segment:
    """Read `level`'s table for periods starting in [start, end)."""

    level: Level
    start: int
    end: int


def plan(query: UsageQuery) -> list[Segment]:
    """Cover the query's minutes with the fewest rows: whole days from a day table, the ragged
    hours at either end from an hour table, the ragged minutes from `usage_minute`.

    A table is usable when its period divides the bucket width (a day row cannot be split into
    hours) and it keeps every dimension the query groups or filters by; of those, the one with
    the fewest dimensions (fewest rows) wins. The answer is exact either way: segments never
    overlap and every minute of the range is in one.
    """
    lo = minute_of(query.since)
    hi = math.ceil(math.ceil(query.until) / 60) * 60
    tiers: list[Level] = []
    for seconds in sorted({level.seconds for level in LEVELS}, reverse=True):
        usable = [lv for lv in LEVELS if lv.seconds == seconds and lv.answers(query)]
        if usable:
            tiers.append(usable[0])
    return _cover(lo, hi, tiers)


def _cover(lo: int, hi: int, levels: list[Level]) -> list[Segment]:
    if lo >= hi or not levels:
        return []
    level, finer = levels[0], levels[1:]
    if not finer:
        return [Segment(level, lo, hi)]
    first = math.ceil(lo / level.seconds) * level.seconds
    last = hi - hi % level.seconds
    if first >= last:
        return _cover(lo, hi, finer)
    return [*_cover(lo, first, finer), Segment(level, first, last), *_cover(last, hi, finer)]


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
