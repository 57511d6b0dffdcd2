"""The experiments' statistics: pure functions over per-unit outcomes, nothing else.

Always-valid inference, so the page may be looked at after every request without inflating
false positives: the **normal-mixture sequential probability ratio test** (mSPRT) of Johari,
Koomen, Pekelis and Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests",
Operations Research 70(3), 2022 (arXiv:1512.04922), the test behind Optimizely's stats engine.
For an estimate `d` of a difference with variance `s2`, and a normal mixing distribution
N(0, tau2) over the true difference, the mixture likelihood ratio against `theta0` is

    L = sqrt(s2 / (s2 + tau2)) * exp(tau2 * (d - theta0)**2 / (2 * s2 * (s2 + tau2)))

By Ville's inequality P(sup_n L_n >= 1/alpha) <= alpha under theta0, so `p = min(1, 1/L)`
(kept as a running minimum by whoever watches it) is an always-valid p-value and the set of
`theta0` with `L < 1/alpha` is a confidence sequence: the interval `d +- radius(s2, tau2, alpha)`.
The variances are plug-in estimates, so the guarantee is asymptotic (Waudby-Smith, Arbour,
Sinha, Kennedy and Ramdas, "Time-uniform central limit theory and asymptotic confidence
sequences", Annals of Statistics, 2024, arXiv:2103.06476); this is why no decision is taken
before `min_units` per variant, and why the A/A rate is checked by simulation (bench).

Proportions use the same test with the Bernoulli variance of a smoothed rate ((x+1)/(n+2), so a
run of all-ones does not claim zero variance). More than one treatment: Holm's step-down
procedure over the always-valid p-values (S. Holm, "A simple sequentially rejective multiple
test procedure", Scand. J. Statist. 6, 1979), valid at any stopping time because each p-value
is. Guardrails are one-sided: harm is declared only when the whole interval lies beyond the
allowed margin. Probability of being best and Thompson sampling (Thompson 1933; Russo et al.,
"A Tutorial on Thompson Sampling", 2018) draw from Beta(1+x, 1+n-x) posteriors for boolean
metrics and Normal(mean, var/n) for float ones, with a seeded generator so a page shows the
same numbers twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

VAR_FLOOR = 1e-12
"""A float metric whose values are all equal still gets a (tiny) variance."""


@dataclass(frozen=True, slots=True)
class Summary:
    """A variant's outcomes: count, mean and the variance of one outcome."""

    n: int
    mean: float
    var: float
    successes: int | None = None
    """Set for a proportion (boolean outcomes)."""

    @classmethod
    def of(cls, values: Sequence[float] | NDArray[np.float64]) -> Summary:
        n = len(values)
        if n == 0:
            return cls(0, 0.0, 0.0)
        arr = np.asarray(values, dtype=float)
        var = float(arr.var(ddof=1)) if n > 1 else 0.0
        return cls(n, float(arr.mean()), max(var, VAR_FLOOR))

    @classmethod
    def of_counts(cls, successes: int, n: int) -> Summary:
        if not 0 <= successes <= n:
            raise ValueError("successes must lie between 0 and n")
        if n == 0:
            return cls(0, 0.0, 0.0, 0)
        smooth = (successes + 1) / (n + 2)
        return cls(n, successes / n, smooth * (1 - smooth), successes)

    @property
    def se2(self) -> float:
        """The variance of the mean."""
        return self.var / self.n if self.n else math.inf


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with its always-valid interval and p-value (against `null`)."""

    estimate: float
    lower: float
    upper: float
    p_value: float

    def excludes(self, value: float) -> bool:
        return not self.lower <= value <= self.upper


def mixture_lr(estimate: float, s2: float, tau2: float, theta0: float = 0.0) -> float:
    """The normal-mixture likelihood ratio of the module doc (as a float; inf on overflow)."""
    if s2 <= 0 or tau2 <= 0:
        raise ValueError("variances must be positive")
    z2 = (estimate - theta0) ** 2
    exponent = tau2 * z2 / (2 * s2 * (s2 + tau2))
    log_lr = 0.5 * math.log(s2 / (s2 + tau2)) + exponent
    return math.exp(log_lr) if log_lr < 700 else math.inf


def radius(s2: float, tau2: float, alpha: float) -> float:
    """Half-width of the confidence sequence: the `theta0` with `mixture_lr < 1/alpha`."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1)")
    if s2 <= 0 or tau2 <= 0:
        raise ValueError("variances must be positive")
    ratio = (s2 + tau2) / s2
    return math.sqrt(s2 * (s2 + tau2) / tau2 * (math.log(ratio) + 2 * math.log(1 / alpha)))


def always_valid(
    estimate: float, s2: float, tau2: float, alpha: float, null: float = 0.0
) -> Interval:
    """The interval and p-value of an estimate with variance `s2`."""
    half = radius(s2, tau2, alpha)
    p = min(1.0, 1.0 / mixture_lr(estimate, s2, tau2, null))
    return Interval(estimate, estimate - half, estimate + half, p)


def difference(control: Summary, treatment: Summary, tau: float, alpha: float) -> Interval:
    """Treatment minus control (of means or proportions), always valid."""
    if control.n < 1 or treatment.n < 1:
        raise ValueError("both variants need outcomes")
    s2 = max(control.se2 + treatment.se2, VAR_FLOOR)
    return always_valid(treatment.mean - control.mean, s2, tau * tau, alpha)


def mean_interval(summary: Summary, tau: float, alpha: float) -> Interval:
    """One variant's mean, always valid (the p-value is against 0 and rarely of interest)."""
    if summary.n < 1:
        raise ValueError("the variant needs outcomes")
    return always_valid(summary.mean, max(summary.se2, VAR_FLOOR), tau * tau, alpha)


def harmed(control: Summary, treatment: Summary, margin: float, tau: float, alpha: float) -> bool:
    """One-sided guardrail: the treatment is worse (higher) than the control by more than
    `margin`, i.e. the whole interval of treatment - control lies above it."""
    return difference(control, treatment, tau, alpha).lower > margin


def exceeds(summary: Summary, bound: float, tau: float, alpha: float) -> bool:
    """One-sided: the mean lies above `bound` (its whole interval does)."""
    return mean_interval(summary, tau, alpha).lower > bound


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected at family-wise level `alpha`."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    m = len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (reject where adjusted <= alpha)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def posterior_draws(
    summaries: Sequence[Summary], boolean: bool, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Posterior draws of each variant's mean, one column per variant."""
    out = np.empty((draws, len(summaries)))
    for j, s in enumerate(summaries):
        if boolean:
            x = s.successes if s.successes is not None else round(s.mean * s.n)
            out[:, j] = rng.beta(1 + x, 1 + s.n - x, size=draws)
        elif s.n < 2:
            out[:, j] = rng.normal(s.mean, 1e3, size=draws)  # next to no data: a flat guess
        else:
            out[:, j] = rng.normal(s.mean, math.sqrt(s.se2), size=draws)
    return out


def prob_best(
    summaries: Sequence[Summary],
    *,
    boolean: bool,
    maximize: bool = True,
    draws: int = 4000,
    seed: int = 0,
) -> list[float]:
    """The posterior probability that each variant has the best mean (Monte Carlo)."""
    if not summaries:
        return []
    rng = np.random.default_rng(seed)
    samples = posterior_draws(summaries, boolean, draws, rng)
    best = samples.argmax(axis=1) if maximize else samples.argmin(axis=1)
    counts = np.bincount(best, minlength=len(summaries))
    return [float(c) / draws for c in counts]


def thompson_weights(
    summaries: Sequence[Summary],
    *,
    boolean: bool,
    floor: float,
    maximize: bool = True,
    draws: int = 4000,
    seed: int = 0,
) -> list[float]:
    """The next allocation: each variant's probability of being best (what Thompson sampling
    serves in expectation), mixed with a floor so every variant keeps at least `floor` of the
    traffic and the always-valid tests keep getting data from all of them."""
    k = len(summaries)
    if k == 0:
        return []
    if not 0 <= floor * k <= 1:
        raise ValueError("floor times the number of variants must lie in [0, 1]")
    p = prob_best(summaries, boolean=boolean, maximize=maximize, draws=draws, seed=seed)
    return [floor + (1 - k * floor) * x for x in p]
