"""A mergeable latency sketch with bounded relative error, and the one percentile function.

Percentiles cannot be added up across rows, bucket counts can. Each usage row keeps a sparse
log-spaced histogram (DDSketch's mapping): a latency `x` falls in bin `ceil(log_g(x))` with
`g = (1 + a) / (1 - a)`, and the bin is read back as `2 g^k / (g + 1)`, within `a` (1%) of every
value in it. So a percentile read off summed bins is within 1% of the true sample at that rank,
for any merge of rows, tables or replicas, from 1 us to about 11 days (outside that the bin is
the edge one, and the clamp below still holds). Each row also keeps the exact min and max;
every estimate is clamped to them, so p99 can never exceed the largest latency recorded.

Stored form: text of comma-separated integers `bin * SCALE + count`, one per non-empty bin
(readable in a SQL shell, mergeable by both SQLite and PostgreSQL without extensions: see
`store.batch.merge_sketch_sql`). A reader tolerates a bin named twice (it sums them), so a
backfill may concatenate texts with a comma; the next upsert compacts them.

`percentiles` (and its batch form `percentiles_of`) is the only place an estimate is made:
the usage API, the overview and the models page all read it through `UsageRow`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from opsgate.store.dialect import dialect_of

RELATIVE_ERROR = 0.01
"""The most an estimate differs from the true value at its rank, as a fraction of it."""

GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(GAMMA)

MIN_MS = 1e-3
"""Latencies below this (1 us) share the lowest bin."""
MAX_MS = 1e9
"""Latencies above this (about 11.6 days) share the highest bin."""

_LOWEST = math.ceil(math.log(MIN_MS) / _LOG_GAMMA)
ZERO_BIN = 0
"""Zero, negative and NaN latencies: read back as 0 ms."""
TOP_BIN = math.ceil(math.log(MAX_MS) / _LOG_GAMMA) - _LOWEST + 1
"""The highest bin (1,383 for 1%): bins are small non-negative integers."""

SCALE = 10**12
"""Stored entry = bin * SCALE + count: a count per row and bin stays below 10^12."""


def bin_of(latency_ms: float) -> int:
    """The bin that counts `latency_ms`."""
    if not latency_ms > 0:  # also NaN
        return ZERO_BIN
    key = math.ceil(math.log(min(max(latency_ms, MIN_MS), MAX_MS)) / _LOG_GAMMA)
    return key - _LOWEST + 1


def value_of(bins: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The value each bin is read back as (0 for `ZERO_BIN`)."""
    keys = np.asarray(bins, dtype=np.float64) + (_LOWEST - 1)
    values = 2.0 * np.exp(keys * _LOG_GAMMA) / (GAMMA + 1.0)
    return np.where(np.asarray(bins) == ZERO_BIN, 0.0, values)


@dataclass(frozen=True, slots=True)
class Sketch:
    """Latencies of one row or rollup bucket: counts per bin (ascending bins), min and max."""

    bins: tuple[int, ...] = ()
    counts: tuple[int, ...] = ()
    min_ms: float = math.inf
    max_ms: float = -math.inf

    @property
    def count(self) -> int:
        return sum(self.counts)

    @classmethod
    def of(cls, latencies_ms: Iterable[float]) -> Sketch:
        values = list(latencies_ms)
        if not values:
            return cls()
        found: dict[int, int] = {}
        for value in values:
            b = bin_of(value)
            found[b] = found.get(b, 0) + 1
        ordered = sorted(found.items())
        return cls(
            tuple(b for b, _ in ordered),
            tuple(c for _, c in ordered),
            min(_clean(v) for v in values),
            max(_clean(v) for v in values),
        )

    def encode(self) -> str:
        """The stored text (see the module docstring)."""
        return encode_bins(dict(zip(self.bins, self.counts, strict=True)))

    def merge(self, *others: Sketch) -> Sketch:
        found = dict(zip(self.bins, self.counts, strict=True))
        for other in others:
            for b, c in zip(other.bins, other.counts, strict=True):
                found[b] = found.get(b, 0) + c
        ordered = sorted(found.items())
        return Sketch(
            tuple(b for b, _ in ordered),
            tuple(c for _, c in ordered),
            min([self.min_ms, *(o.min_ms for o in others)]),
            max([self.max_ms, *(o.max_ms for o in others)]),
        )


def _clean(latency_ms: float) -> float:
    """What min and max keep: the value itself, 0 for what `ZERO_BIN` counts."""
    return latency_ms if latency_ms > 0 else 0.0


def encode_bins(counts: dict[int, int]) -> str:
    return ",".join(str(b * SCALE + c) for b, c in sorted(counts.items()) if c)


_NONE = np.zeros(0, np.int64)


def decode(texts: Sequence[str | None]) -> tuple[npt.NDArray[np.int64], ...]:
    """Parse stored texts (one per group; each may be several rows' joined by commas) into
    (group index, bin, count) arrays with one entry per group and bin, ascending."""
    lengths = np.array([t.count(",") + 1 if t else 0 for t in texts], dtype=np.int64)
    joined = ",".join(t for t in texts if t)
    try:
        entries = np.fromstring(joined, dtype=np.int64, sep=",") if joined else _NONE
    except ValueError:
        entries = _NONE
    if len(entries) != int(lengths.sum()):
        raise ValueError("a latency sketch is malformed")
    groups = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    keys = groups * (TOP_BIN + 1) + entries // SCALE
    unique, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse, weights=entries % SCALE).astype(np.int64)
    return unique // (TOP_BIN + 1), unique % (TOP_BIN + 1), counts


def sketches(
    texts: Sequence[str | None], mins: Sequence[float | None], maxes: Sequence[float | None]
) -> list[Sketch]:
    """`Sketch`es from stored (or SQL-concatenated) texts and their min/max columns."""
    groups, bins, counts = decode(texts)
    cuts = np.searchsorted(groups, np.arange(len(texts) + 1))
    out = []
    for i, (low, high) in enumerate(zip(mins, maxes, strict=True)):
        a, b = int(cuts[i]), int(cuts[i + 1])
        out.append(
            Sketch(
                tuple(bins[a:b].tolist()),
                tuple(counts[a:b].tolist()),
                math.inf if low is None or a == b else float(low),
                -math.inf if high is None or a == b else float(high),
            )
        )
    return out


def percentiles_of(rows: Sequence[Sketch], qs: Sequence[float]) -> list[list[float | None]]:
    """`percentiles` for many sketches at once (a rollup may return thousands of buckets)."""
    lengths = np.array([len(s.bins) for s in rows], dtype=np.int64)
    bins = np.fromiter((b for s in rows for b in s.bins), np.int64, int(lengths.sum()))
    counts = np.fromiter((c for s in rows for c in s.counts), np.int64, int(lengths.sum()))
    starts = np.concatenate(([0], np.cumsum(lengths)))
    cumulative = np.concatenate(([0], np.cumsum(counts)))
    before = cumulative[starts[:-1]]
    totals = cumulative[starts[1:]] - before
    low = np.array([s.min_ms for s in rows], dtype=np.float64)
    high = np.array([s.max_ms for s in rows], dtype=np.float64)
    out = np.full((len(rows), len(qs)), np.nan)
    has = totals > 0
    for column, q in enumerate(qs):
        rank = np.floor(min(max(q, 0.0), 1.0) * (totals - 1))
        # the first bin whose running count passes `rank` holds the sample at that rank
        at = np.searchsorted(cumulative[1:], before + rank, side="right")
        at = np.minimum(at, max(len(bins) - 1, 0))
        estimate = value_of(bins[at]) if len(bins) else np.zeros(len(rows))
        estimate = np.where(rank >= totals - 1, high, np.clip(estimate, low, high))
        estimate = np.where(rank <= 0, low, estimate)  # the ends are known exactly
        out[:, column] = np.where(has, estimate, np.nan)
    return [[None if math.isnan(v) else float(v) for v in row] for row in out.tolist()]


def percentiles(sketch: Sketch, qs: Sequence[float]) -> list[float | None]:
    """The `qs` quantiles (each in [0, 1]) of the sketched latencies: the value at rank
    `floor(q * (n - 1))` of the sorted samples, within `RELATIVE_ERROR` of it and clamped to
    the recorded [min, max] (the first and last rank are min and max themselves); None when
    the sketch is empty."""
    return percentiles_of([sketch], qs)[0]


def merge_sql(dialect: str, old: str, new: str) -> str:
    """SQL for the sketch text with the counts of two texts (`old`, `new`: column references)
    added bin by bin: the upsert of a usage row. Built-in functions only (SQLite's JSON1,
    PostgreSQL arrays: `store.dialect`), so it runs wherever the tables do."""
    return f"coalesce(({dialect_of(dialect).merge_sketch(old, new, SCALE)}), '')"
