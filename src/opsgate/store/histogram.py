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

`Batch.percentiles` (and `percentiles`, for one sketch) is the only place an estimate is made:
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
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Batch:
    """Many sketches side by side in flat arrays: sketch `i` holds `bins[starts[i]:starts[i+1]]`
    (ascending) with their `counts`, and `low[i]`, `high[i]`. A rollup may return thousands
    of buckets: they are decoded and estimated without a Python loop over their bins."""

    starts: Ints
    bins: Ints
    counts: Ints
    low: Floats
    high: Floats

    def __len__(self) -> int:
        return len(self.starts) - 1

    def sketches(self) -> list[Sketch]:
        bins, counts, cuts = self.bins.tolist(), self.counts.tolist(), self.starts.tolist()
        return [
            Sketch(tuple(bins[a:b]), tuple(counts[a:b]), low, high) if a < b else Sketch()
            for a, b, low, high in zip(
                cuts[:-1], cuts[1:], self.low.tolist(), self.high.tolist(), strict=True
            )
        ]

    def percentiles(self, qs: Sequence[float]) -> list[list[float | None]]:
        """The one estimate every page and API reads (see `percentiles`), per sketch."""
        cumulative = np.concatenate(([0], np.cumsum(self.counts)))
        before = cumulative[self.starts[:-1]]
        totals = cumulative[self.starts[1:]] - before
        low, high = self.low, self.high
        out = np.full((len(self), len(qs)), np.nan)
        has = totals > 0
        last = max(len(self.bins) - 1, 0)
        for column, q in enumerate(qs):
            rank = np.floor(min(max(q, 0.0), 1.0) * (totals - 1))
            # the first bin whose running count passes `rank` holds the sample at that rank
            at = np.minimum(np.searchsorted(cumulative[1:], before + rank, side="right"), last)
            estimate = value_of(self.bins[at]) if len(self.bins) else np.zeros(len(self))
            with np.errstate(invalid="ignore"):  # empty sketches: inf bounds, masked below
                estimate = np.where(rank >= totals - 1, high, np.clip(estimate, low, high))
            estimate = np.where(rank <= 0, low, estimate)  # the ends are known exactly
            out[:, column] = np.where(has, estimate, np.nan)
        return [[None if math.isnan(v) else float(v) for v in row] for row in out.tolist()]


def batch_of(rows: Sequence[Sketch]) -> Batch:
    lengths = [len(s.bins) for s in rows]
    return Batch(
        np.concatenate(([0], np.cumsum(lengths, dtype=np.int64))).astype(np.int64),
        np.array([b for s in rows for b in s.bins], dtype=np.int64),
        np.array([c for s in rows for c in s.counts], dtype=np.int64),
        np.array([s.min_ms for s in rows], dtype=np.float64),
        np.array([s.max_ms for s in rows], dtype=np.float64),
    )


def decode(
    texts: Sequence[str | None], mins: Sequence[float | None], maxes: Sequence[float | None]
) -> Batch:
    """A `Batch` from stored texts (one per group; each may be several rows' texts joined by
    commas, a bin named in more than one: their counts add) and their min/max columns."""
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
    starts = np.searchsorted(unique // (TOP_BIN + 1), np.arange(len(texts) + 1))
    empty = starts[1:] == starts[:-1]
    low = np.array([math.inf if v is None else v for v in mins], dtype=np.float64)
    high = np.array([-math.inf if v is None else v for v in maxes], dtype=np.float64)
    return Batch(
        starts.astype(np.int64),
        unique % (TOP_BIN + 1),
        counts,
        np.where(empty, math.inf, low),
        np.where(empty, -math.inf, high),
    )


def percentiles(sketch: Sketch, qs: Sequence[float]) -> list[float | None]:
    """The `qs` quantiles (each in [0, 1]) of the sketched latencies: the value at rank
    `floor(q * (n - 1))` of the sorted samples, within `RELATIVE_ERROR` of it and clamped to
    the recorded [min, max] (the first and last rank are min and max themselves); None when
    the sketch is empty. (`Batch.percentiles` does the same for many at once.)"""
    return batch_of([sketch]).percentiles(qs)[0]


COMPACT_AT = 8192
"""A stored text shorter than this (about 480 entries) takes new entries by appending them;
a longer one is merged bin by bin. Merging parses the whole text, and a day row's grows to
hundreds of bins while a batch adds a few: appending until the text is this long, then
merging, costs a fraction of merging every time, and a reader sums repeated bins (`decode`)."""


def merge_sql(dialect: str, old: str, new: str) -> str:
    """SQL for a usage row's sketch text on upsert: `new` appended to `old` while short (see
    `COMPACT_AT`), else the counts of both added bin by bin (`old`, `new`: column references).
    Built-in functions only (SQLite's JSON1, PostgreSQL arrays: `store.dialect`), so it runs
    wherever the tables do."""
    merged = dialect_of(dialect).merge_sketch(old, new, SCALE)
    return (
        f"CASE WHEN length({old}) + length({new}) < {COMPACT_AT} "
        f"THEN CASE WHEN {old} = '' THEN {new} ELSE {old} || ',' || {new} END "
        f"ELSE coalesce(({merged}), '') END"
    )
