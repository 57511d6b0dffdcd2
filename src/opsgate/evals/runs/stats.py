"""Confidence intervals and paired comparisons by the bootstrap (seeded: a report prints the
same numbers every time it is computed from the same results)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ITERATIONS = 2_000
SEED = 20_251_206
LEVEL = 0.95
_CHUNK = 256


def _resampled_means(values: np.ndarray, iterations: int, seed: int) -> np.ndarray:
    """Means of `iterations` resamples with replacement, drawn in chunks (bounded memory)."""
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(iterations)
    for start in range(0, iterations, _CHUNK):
        size = min(_CHUNK, iterations - start)
        picks = rng.integers(0, n, size=(size, n))
        means[start : start + size] = values[picks].mean(axis=1)
    return means


@dataclass(frozen=True, slots=True)
class Estimate:
    n: int
    mean: float
    low: float
    high: float


def bootstrap_ci(
    values: Sequence[float], iterations: int = ITERATIONS, seed: int = SEED, level: float = LEVEL
) -> Estimate:
    """The mean and its percentile bootstrap interval (nan for no values)."""
    data = np.asarray(values, dtype=np.float64)
    if not len(data):
        return Estimate(0, math.nan, math.nan, math.nan)
    if len(data) == 1 or np.all(data == data[0]):
        m = float(data.mean())
        return Estimate(len(data), m, m, m)
    means = _resampled_means(data, iterations, seed)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Estimate(len(data), float(data.mean()), float(low), float(high))


@dataclass(frozen=True, slots=True)
class Paired:
    """`b - a` over the rows both runs scored: the mean difference, its interval, and the
    two-sided bootstrap p-value of "no difference"."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - LEVEL


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    iterations: int = ITERATIONS,
    seed: int = SEED,
    level: float = LEVEL,
) -> Paired:
    """Resample rows (pairs), not the two runs apart: a row both runs find hard counts once."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError("paired samples must have the same length")
    if not len(x):
        return Paired(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    d = y - x
    mean = float(d.mean())
    if np.all(d == d[0]):
        p = 1.0 if d[0] == 0 else 0.0
        return Paired(len(d), float(x.mean()), float(y.mean()), mean, mean, mean, p)
    means = _resampled_means(d, iterations, seed)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    p = min(1.0, 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    return Paired(len(d), float(x.mean()), float(y.mean()), mean, float(low), float(high), p)
