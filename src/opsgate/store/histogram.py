"""A fixed, log-spaced latency histogram that can be summed across rows and replicas.

Percentiles cannot be added up, bucket counts can: each per-minute usage row keeps one count per
bucket, and any rollup (hour, day, model, key, team, user) sums the counts and reads p50/p95/p99
off the result. Bounds grow by sqrt(2), so an estimate is within one bucket (about 19%) of the
true value, and usually much closer after interpolation.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

BOUNDS_MS: tuple[float, ...] = tuple(2 ** (i / 2) for i in range(41))
"""Upper bounds (exclusive) of the finite buckets: 1 ms, 1.41 ms, 2 ms ... 1,048,576 ms."""

BUCKETS = len(BOUNDS_MS) + 1
"""The finite buckets plus one overflow bucket for anything at or above the last bound."""

COLUMNS: tuple[str, ...] = tuple(f"lat_b{i:02d}" for i in range(BUCKETS))
"""Column names of the buckets in `usage_minute`; part of the schema, never renumber."""


def bucket_of(latency_ms: float) -> int:
    """The index of the bucket that counts `latency_ms`."""
    if not latency_ms > 0:  # also catches NaN
        return 0
    return bisect.bisect_right(BOUNDS_MS, latency_ms)


def _lower(index: int) -> float:
    return 0.0 if index == 0 else BOUNDS_MS[index - 1]


def quantile(counts: Sequence[int], q: float) -> float | None:
    """Estimate the `q` quantile (0..1) from summed bucket counts; None when there are none."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = max(min(q, 1.0), 0.0) * total
    seen = 0
    for index, count in enumerate(counts):
        if count <= 0:
            continue
        if seen + count >= rank:
            if index >= len(BOUNDS_MS):
                return BOUNDS_MS[-1]
            fraction = (rank - seen) / count
            low, high = _lower(index), BOUNDS_MS[index]
            if low <= 0:
                return high * fraction
            return math.exp(math.log(low) + fraction * (math.log(high) - math.log(low)))
        seen += count
    return BOUNDS_MS[-1]


_LOWER = np.array([_lower(i) for i in range(BUCKETS)])
_UPPER = np.array([*BOUNDS_MS, BOUNDS_MS[-1]])


def quantiles(counts: npt.ArrayLike, qs: Sequence[float]) -> npt.NDArray[np.float64]:
    """`quantile` for many histograms at once: rows of `counts` by `qs` (each in (0, 1]).

    A rollup may return thousands of buckets; the per-row Python loop was most of its time.
    NaN where a row has no counts.
    """
    table = np.asarray(counts, dtype=np.float64).reshape(-1, BUCKETS)
    total = table.sum(axis=1)
    cumulative = table.cumsum(axis=1)
    rows = np.arange(len(table))
    out = np.full((len(table), len(qs)), np.nan)
    for column, q in enumerate(qs):
        rank = min(max(q, 0.0), 1.0) * total
        index = (cumulative >= rank[:, None]).argmax(axis=1)
        count = table[rows, index]
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = (rank - (cumulative[rows, index] - count)) / count
            low, high = _LOWER[index], _UPPER[index]
            logs = np.exp(np.log(low) + fraction * (np.log(high) - np.log(low)))
            value = np.where(low <= 0, high * fraction, logs)
        out[:, column] = np.where(total > 0, value, np.nan)
    return out


def histogram(latencies_ms: Sequence[float]) -> list[int]:
    """Bucket counts for a list of latencies (for the in-memory store and for tests)."""
    counts = [0] * BUCKETS
    for value in latencies_ms:
        counts[bucket_of(value)] += 1
    return counts
