"""The drift tests: pure functions over samples, nothing else (no I/O, no clock, seeded RNGs).

- **Energy distance with a permutation test** (Székely and Rizzo, "Energy statistics: a class of
  statistics based on distances", J. Stat. Plan. Inference 143, 2013) for embeddings: the
  statistic `E = 2 E|X-Y| - E|X-X'| - E|Y-Y'|` is zero only when the two distributions are
  equal. Its p-value is `(1 + #{permuted E >= observed E}) / (1 + B)`, which is exactly valid
  (P(p <= alpha) <= alpha under no shift) for any sample size, because under no shift the
  observed labelling is one more draw from the permutation distribution. The effect size is
  the homogeneity coefficient `H = E / (2 E|X-Y|)` in [0, 1].
- **Cluster shares**: k-means on the pooled sample, then each cluster's share of the reference
  and of the current window, so a page can say which topics grew.
- **PSI** (population stability index) on reference-quantile bins: an effect size, not a test;
  the p-values come from **KS** (continuous values) and **chi-square** (categories, Fisher's
  exact test for a 2x2 table with small expected counts).
- **CUSUM** (Page, "Continuous inspection schemes", Biometrika 41, 1954) for scores: the
  standardised lower and upper cumulative sums; its threshold is calibrated by resampling the
  reference, so "the sum crossed h within n values" has probability alpha under no shift.
- **Multiple testing**: within one monitor, its sub-tests are combined by Bonferroni
  (`combine`); across monitors Holm's step-down procedure (`holm`) is available for a family.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@functools.cache
def _sps() -> ModuleType:
    """`scipy.stats`, imported by the first test that needs it: importing it adds about 75 MB
    to a worker's memory, which a worker that never runs a drift check should not carry."""
    return importlib.import_module("scipy.stats")


PSI_EPS = 1e-4
"""Share given to an empty bin, so PSI stays finite."""


@dataclass(frozen=True, slots=True)
class TwoSample:
    """One two-sample test: the statistic, its p-value and an effect size."""

    statistic: float
    p_value: float
    effect: float
    n_ref: int
    n_cur: int


@dataclass(frozen=True, slots=True)
class ClusterShift:
    """One cluster's share of each sample; `examples` index rows of the current sample (or,
    for a cluster that shrank, of the reference) nearest the cluster's centre."""

    cluster: int
    ref_share: float
    cur_share: float
    examples: list[int] = field(default_factory=list)
    from_reference: bool = False

    @property
    def delta(self) -> float:
        return self.cur_share - self.ref_share


def _as2d(x: npt.ArrayLike) -> Array:
    arr = np.asarray(x, dtype=np.float64)
    return arr.reshape(len(arr), -1) if arr.ndim == 1 else arr


def pairwise_distances(z: Array) -> Array:
    """Euclidean distances between all rows of `z`."""
    sq = np.einsum("ij,ij->i", z, z)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    out: Array = np.sqrt(d2)
    return out


def _energy_from(d: Array, labels: Array, n: int, m: int) -> Array:
    """The energy statistic for each column of `labels` (1 = reference row)."""
    total = d.sum()
    rows = d.sum(axis=1)
    dl = d @ labels
    sxx = np.einsum("ij,ij->j", labels, dl)
    sxy = rows @ labels - sxx
    syy = total - 2.0 * sxy - sxx
    out: Array = 2.0 * sxy / (n * m) - sxx / (n * n) - syy / (m * m)
    return out


def energy_test(
    ref: npt.ArrayLike,
    cur: npt.ArrayLike,
    *,
    permutations: int = 199,
    seed: int = 0,
) -> TwoSample:
    """Energy distance between two samples (rows are points) and its permutation p-value."""
    x, y = _as2d(ref), _as2d(cur)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("each sample needs at least two rows")
    d = pairwise_distances(np.vstack([x, y]))
    rng = np.random.default_rng(seed)
    labels = np.zeros((n + m, permutations + 1))
    labels[:n, 0] = 1.0
    for b in range(1, permutations + 1):
        labels[rng.permutation(n + m)[:n], b] = 1.0
    e = _energy_from(d, labels, n, m)
    observed = float(e[0])
    exceed = int(np.count_nonzero(e[1:] >= observed - 1e-12 * max(1.0, abs(observed))))
    mean_xy = float(d[:n, n:].mean())
    effect = observed / (2.0 * mean_xy) if mean_xy > 0 else 0.0
    return TwoSample(observed, (1 + exceed) / (1 + permutations), max(0.0, effect), n, m)


def kmeans(z: npt.ArrayLike, k: int, *, seed: int = 0, iterations: int = 25) -> Array:
    """Cluster centres of `z` (k-means++ start, Lloyd iterations); fewer than `k` when `z` has
    fewer distinct rows."""
    x = _as2d(z)
    rng = np.random.default_rng(seed)
    k = max(1, min(k, len(np.unique(x, axis=0))))
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        if total <= 0:
            break
        centres.append(x[rng.choice(len(x), p=d2 / total)])
    c = np.array(centres)
    for _ in range(iterations):
        assign = assign_clusters(x, c)
        moved = np.array(
            [x[assign == j].mean(axis=0) if np.any(assign == j) else c[j] for j in range(len(c))]
        )
        if np.allclose(moved, c):
            break
        c = moved
    return c


def assign_clusters(z: npt.ArrayLike, centres: Array) -> npt.NDArray[np.int64]:
    x = _as2d(z)
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None]
    out: npt.NDArray[np.int64] = np.argmin(d2, axis=1).astype(np.int64)
    return out


def cluster_shifts(
    ref: npt.ArrayLike,
    cur: npt.ArrayLike,
    *,
    k: int = 8,
    examples: int = 3,
    seed: int = 0,
) -> tuple[list[ClusterShift], TwoSample]:
    """Per-cluster shares (largest change first) and a chi-square test of the share table."""
    x, y = _as2d(ref), _as2d(cur)
    centres = kmeans(np.vstack([x, y]), k, seed=seed)
    ax, ay = assign_clusters(x, centres), assign_clusters(y, centres)
    kk = len(centres)
    cx = np.bincount(ax, minlength=kk).astype(float)
    cy = np.bincount(ay, minlength=kk).astype(float)
    shifts: list[ClusterShift] = []
    for j in range(kk):
        grew = bool(cy[j] / len(y) >= cx[j] / len(x))
        rows, members = (y, ay) if grew else (x, ax)
        idx = np.flatnonzero(members == j)
        near = idx[np.argsort(((rows[idx] - centres[j]) ** 2).sum(1))[:examples]]
        shifts.append(
            ClusterShift(
                j, float(cx[j] / len(x)), float(cy[j] / len(y)), [int(i) for i in near], not grew
            )
        )
    shifts.sort(key=lambda s: -abs(s.delta))
    return shifts, chi_square([cx, cy])


def psi(ref: npt.ArrayLike, cur: npt.ArrayLike, *, bins: int = 10) -> float:
    """Population stability index over the reference's quantile bins (0: same; rule of thumb:
    < 0.1 stable, 0.1-0.25 moderate, > 0.25 large)."""
    x = np.asarray(ref, dtype=np.float64).ravel()
    y = np.asarray(cur, dtype=np.float64).ravel()
    if len(x) == 0 or len(y) == 0:
        raise ValueError("PSI needs two non-empty samples")
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    px = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    py = np.bincount(np.searchsorted(edges, y, side="right"), minlength=len(edges) + 1)
    return psi_counts(px, py)


def psi_counts(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> float:
    """PSI of two count vectors over the same bins or categories."""
    a = np.asarray(ref_counts, dtype=np.float64)
    b = np.asarray(cur_counts, dtype=np.float64)
    pa = np.maximum(a / a.sum(), PSI_EPS)
    pb = np.maximum(b / b.sum(), PSI_EPS)
    return float(np.sum((pb - pa) * np.log(pb / pa)))


def ks_test(ref: npt.ArrayLike, cur: npt.ArrayLike) -> TwoSample:
    """Two-sample Kolmogorov-Smirnov; the effect is PSI. With ties (integer lengths) the
    asymptotic p-value is conservative, which keeps false alarms at or under alpha."""
    x = np.asarray(ref, dtype=np.float64).ravel()
    y = np.asarray(cur, dtype=np.float64).ravel()
    if len(x) == 0 or len(y) == 0:
        raise ValueError("KS needs two non-empty samples")
    result = _sps().ks_2samp(x, y, method="asymp")
    return TwoSample(float(result.statistic), float(result.pvalue), psi(x, y), len(x), len(y))


def chi_square(table: Sequence[npt.ArrayLike]) -> TwoSample:
    """Homogeneity of two count vectors (reference, current) over the same categories; the
    effect is PSI. Categories empty in both are dropped; a 2x2 table with an expected count
    under 5 uses Fisher's exact test."""
    t = np.asarray(table, dtype=np.float64)
    n_ref, n_cur = int(t[0].sum()), int(t[1].sum())
    if n_ref == 0 or n_cur == 0:
        raise ValueError("chi-square needs two non-empty samples")
    t = t[:, t.sum(axis=0) > 0]
    if t.shape[1] < 2:
        return TwoSample(0.0, 1.0, 0.0, n_ref, n_cur)
    effect = psi_counts(t[0], t[1])
    expected = t.sum(1)[:, None] * t.sum(0)[None] / t.sum()
    if t.shape[1] == 2 and expected.min() < 5:
        _, p = _sps().fisher_exact(t.astype(np.int64))
        stat = float(((t - expected) ** 2 / expected).sum())
        return TwoSample(stat, float(p), effect, n_ref, n_cur)
    stat, p, _, _ = _sps().chi2_contingency(t, correction=False)
    return TwoSample(float(stat), float(p), effect, n_ref, n_cur)


def cusum_path(values: npt.ArrayLike, mean: float, sd: float, *, k: float) -> Array:
    """The two-sided standardised CUSUM after each value: max(lower, upper) sum, where
    `lower_t = max(0, lower_{t-1} - z_t - k)` catches a drop and `upper` a rise."""
    z = (np.asarray(values, dtype=np.float64).ravel() - mean) / max(sd, 1e-9)
    lo = hi = 0.0
    out = np.empty(len(z))
    for i, v in enumerate(z):
        lo = max(0.0, lo - v - k)
        hi = max(0.0, hi + v - k)
        out[i] = max(lo, hi)
    return out


def _null_maxima(ref: Array, n: int, *, k: float, sims: int, seed: int) -> Array:
    """The CUSUM's maximum over `n` values drawn (with replacement) from the reference."""
    mean, sd = float(ref.mean()), float(ref.std())
    rng = np.random.default_rng(seed)
    draws = (ref[rng.integers(len(ref), size=(sims, n))] - mean) / max(sd, 1e-9)
    lo = np.zeros(sims)
    hi = np.zeros(sims)
    peak = np.zeros(sims)
    for t in range(n):
        lo = np.maximum(0.0, lo - draws[:, t] - k)
        hi = np.maximum(0.0, hi + draws[:, t] - k)
        peak = np.maximum(peak, np.maximum(lo, hi))
    return peak


@dataclass(frozen=True, slots=True)
class Cusum:
    """A CUSUM over the current window: its peak, the calibrated threshold for `alpha`, the
    p-value of the peak, and the index of the first value over the threshold (None: none)."""

    statistic: float
    threshold: float
    p_value: float
    alarm_at: int | None
    n_ref: int
    n_cur: int
    shift: float
    """The current mean minus the reference mean, in reference standard deviations."""


def cusum_test(
    ref: npt.ArrayLike,
    cur: npt.ArrayLike,
    *,
    alpha: float,
    k: float = 0.125,
    sims: int = 400,
    seed: int = 0,
) -> Cusum:
    """The sequential test of the current values (in arrival order) against the reference.
    `k` is half the smallest shift worth catching, in standard deviations (0.125: a 0.8 to 0.7
    thumbs-up drop is 0.25 sd)."""
    x = np.asarray(ref, dtype=np.float64).ravel()
    y = np.asarray(cur, dtype=np.float64).ravel()
    if len(x) < 2 or len(y) == 0:
        raise ValueError("CUSUM needs a reference of two or more values and a current one")
    mean, sd = float(x.mean()), float(x.std())
    path = cusum_path(y, mean, sd, k=k)
    null = _null_maxima(x, len(y), k=k, sims=sims, seed=seed)
    h = float(np.quantile(null, 1.0 - alpha, method="higher"))
    peak = float(path.max())
    p = (1 + int(np.count_nonzero(null >= peak))) / (1 + sims)
    over = np.flatnonzero(path > h)
    alarm = int(over[0]) if len(over) else None
    shift = (float(y.mean()) - mean) / max(sd, 1e-9)
    return Cusum(peak, h, p, alarm, len(x), len(y), shift)


def mean_test(ref: npt.ArrayLike, cur: npt.ArrayLike) -> TwoSample:
    """A fixed-window comparison of means (Welch's t-test): the baseline the CUSUM is set
    against; the effect is the difference in reference standard deviations."""
    x = np.asarray(ref, dtype=np.float64).ravel()
    y = np.asarray(cur, dtype=np.float64).ravel()
    if len(x) < 2 or len(y) < 2:
        raise ValueError("each sample needs at least two values")
    sd = float(x.std()) or 1e-9
    if float(x.var()) == 0 and float(y.var()) == 0:
        p = 1.0 if x[0] == y[0] else 0.0
        return TwoSample(0.0, p, (float(y.mean()) - float(x.mean())) / sd, len(x), len(y))
    result = _sps().ttest_ind(x, y, equal_var=False)
    effect = (float(y.mean()) - float(x.mean())) / sd
    return TwoSample(float(result.statistic), float(result.pvalue), effect, len(x), len(y))


def combine(p_values: Sequence[float]) -> float:
    """Bonferroni: the smallest p-value times how many were tested (capped at 1), so a
    monitor that runs m sub-tests raises a false alarm with probability at most alpha."""
    if not p_values:
        return 1.0
    return min(1.0, min(p_values) * len(p_values))


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected while keeping the chance of
    any false rejection in the family at or under alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    m = len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


def binomial_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a rate (the false-alarm rate of a simulation)."""
    if trials == 0:
        return 0.0, 1.0
    z = float(_sps().norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return max(0.0, centre - half), min(1.0, centre + half)
