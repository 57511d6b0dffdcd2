"""The statistics: properties (hypothesis) of the mixture SPRT, its confidence sequence, Holm
and the posteriors, and checks against exact or simulated reference values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsgate.experiments.stats import (
    Summary,
    always_valid,
    difference,
    harmed,
    holm,
    holm_adjusted,
    mixture_lr,
    prob_best,
    radius,
    thompson_weights,
)

positive = st.floats(min_value=1e-6, max_value=1e3, allow_nan=False)
alphas = st.floats(min_value=0.001, max_value=0.2)
estimates = st.floats(min_value=-100, max_value=100, allow_nan=False)


@given(s2=positive, tau2=positive, alpha=alphas)
def test_the_interval_edge_is_where_the_ratio_reaches_one_over_alpha(
    s2: float, tau2: float, alpha: float
) -> None:
    r = radius(s2, tau2, alpha)
    assert mixture_lr(r, s2, tau2) == pytest.approx(1 / alpha, rel=1e-6)
    assert mixture_lr(-r, s2, tau2) == pytest.approx(1 / alpha, rel=1e-6)


@given(estimate=estimates, s2=positive, tau2=positive, alpha=alphas)
def test_p_value_below_alpha_exactly_when_the_interval_excludes_zero(
    estimate: float, s2: float, tau2: float, alpha: float
) -> None:
    found = always_valid(estimate, s2, tau2, alpha)
    assert found.lower <= estimate <= found.upper
    if abs(abs(estimate) - radius(s2, tau2, alpha)) > 1e-9 * max(1.0, abs(estimate)):
        assert (found.p_value < alpha) == found.excludes(0.0)


@given(s2=positive, tau2=positive, alpha=alphas)
def test_more_data_narrows_the_interval(s2: float, tau2: float, alpha: float) -> None:
    assert radius(s2 / 2, tau2, alpha) < radius(s2, tau2, alpha)
    assert radius(s2, tau2, alpha / 2) > radius(s2, tau2, alpha)


def test_the_closed_form_is_the_mixture_of_likelihood_ratios() -> None:
    """Integrate the Gaussian likelihood ratio over the N(0, tau2) mixing density numerically
    and compare with the closed form."""
    for d, s2, tau2 in [(0.03, 0.0004, 0.0025), (-0.2, 0.01, 0.04), (1.5, 0.5, 0.1)]:
        theta = np.linspace(-40 * math.sqrt(tau2), 40 * math.sqrt(tau2), 400_001)
        ratio = np.exp((theta * d - theta**2 / 2) / s2)  # N(d; theta, s2) / N(d; 0, s2)
        density = np.exp(-(theta**2) / (2 * tau2)) / math.sqrt(2 * math.pi * tau2)
        integral = float(np.sum(ratio * density) * (theta[1] - theta[0]))
        assert mixture_lr(d, s2, tau2) == pytest.approx(integral, rel=1e-6)


def test_aa_with_continuous_peeking_keeps_false_positives_below_alpha() -> None:
    """Simulated reference: 400 A/A experiments of Bernoulli(0.3) units, looked at after every
    25 units per arm up to 2,000: the share ever declaring a difference stays below alpha (a
    fixed-horizon z-test looked at this often exceeds it several times over)."""
    rng = np.random.default_rng(17)
    alpha, runs, step, horizon = 0.05, 400, 25, 2000
    a = rng.random((runs, horizon)) < 0.3
    b = rng.random((runs, horizon)) < 0.3
    rejected = naive = 0
    for r in range(runs):
        ca, cb = np.cumsum(a[r]), np.cumsum(b[r])
        hit = naive_hit = False
        for n in range(100, horizon + 1, step):
            sa, sb = Summary.of_counts(int(ca[n - 1]), n), Summary.of_counts(int(cb[n - 1]), n)
            found = difference(sa, sb, 0.05, alpha)
            hit = hit or found.p_value <= alpha
            z = found.estimate / math.sqrt(sa.se2 + sb.se2)
            naive_hit = naive_hit or abs(z) > 1.96
        rejected += hit
        naive += naive_hit
    rate = rejected / runs
    upper = rate + 1.96 * math.sqrt(max(rate * (1 - rate), 1e-4) / runs)
    assert rate <= alpha and upper < 0.08
    assert naive / runs > 2 * alpha  # the reason for all this


def test_the_interval_covers_the_true_difference_at_every_look() -> None:
    """Simulated coverage of the confidence sequence for a difference of means (normal data,
    true difference 0.3): at least 1 - alpha of the runs never exclude it."""
    rng = np.random.default_rng(3)
    runs, horizon, alpha = 300, 1500, 0.05
    a = rng.normal(1.0, 1.0, (runs, horizon))
    b = rng.normal(1.3, 2.0, (runs, horizon))
    missed = 0
    for r in range(runs):
        for n in range(100, horizon + 1, 50):
            found = difference(Summary.of(a[r, :n]), Summary.of(b[r, :n]), 0.2, alpha)
            if found.excludes(0.3):
                missed += 1
                break
    assert missed / runs <= alpha


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=12), alphas)
def test_holm_rejects_what_its_adjusted_p_values_say_and_nests_in_alpha(
    p: list[float], alpha: float
) -> None:
    rejected = holm(p, alpha)
    assert rejected == [q <= alpha for q in holm_adjusted(p)]
    tighter = holm(p, alpha / 2)
    assert all(r or not t for r, t in zip(rejected, tighter, strict=True))
    bonferroni = [q <= alpha / len(p) for q in p]
    assert all(r or not b for r, b in zip(rejected, bonferroni, strict=True))


def test_holm_reference_values() -> None:
    assert holm([0.01, 0.04, 0.03], 0.05) == [True, False, False]
    assert holm_adjusted([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.01, 0.02, 0.03], 0.05) == [True, True, True]  # 0.01<=1/60, 0.02<=1/40...


def _exact_beta_b_beats_a(xa: int, na: int, xb: int, nb: int) -> float:
    """P(p_b > p_a) for Beta(1+x, 1+n-x) posteriors, in closed form (E. Miller's sum)."""
    a_a, b_a, a_b, b_b = 1 + xa, 1 + na - xa, 1 + xb, 1 + nb - xb
    total = 0.0
    for i in range(a_b):
        total += math.exp(
            math.lgamma(a_a + i)
            + math.lgamma(b_a + b_b)
            + math.lgamma(1 + i + b_b)
            + math.lgamma(a_a + b_a)
            - math.log(b_b + i)
            - math.lgamma(1 + i)
            - math.lgamma(a_a + i + b_a + b_b)
            - math.lgamma(b_b)
            - math.lgamma(a_a)
            - math.lgamma(b_a)
        )
    return total


@pytest.mark.parametrize(("xa", "na", "xb", "nb"), [(40, 100, 55, 100), (5, 20, 4, 20)])
def test_probability_of_being_best_matches_the_exact_value(
    xa: int, na: int, xb: int, nb: int
) -> None:
    exact = _exact_beta_b_beats_a(xa, na, xb, nb)
    draws = 200_000
    found = prob_best(
        [Summary.of_counts(xa, na), Summary.of_counts(xb, nb)], boolean=True, draws=draws
    )
    assert found[1] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / draws))


counts = st.integers(min_value=0, max_value=500)


@settings(max_examples=50)
@given(
    st.lists(st.tuples(counts, counts), min_size=2, max_size=6),
    st.floats(min_value=0, max_value=0.15),
)
def test_thompson_weights_sum_to_one_and_keep_the_floor(
    data: list[tuple[int, int]], floor: float
) -> None:
    summaries = [Summary.of_counts(min(x, n), n) for x, n in data]
    if floor * len(summaries) > 1:
        floor = 1 / len(summaries)
    weights = thompson_weights(summaries, boolean=True, floor=floor, draws=500)
    assert sum(weights) == pytest.approx(1.0)
    assert all(w >= floor - 1e-12 for w in weights)


def test_thompson_favours_the_better_variant_and_minimise_flips_it() -> None:
    good, bad = Summary.of_counts(300, 500), Summary.of_counts(200, 500)
    up = thompson_weights([bad, good], boolean=True, floor=0.05)
    down = thompson_weights([bad, good], boolean=True, floor=0.05, maximize=False)
    assert up == pytest.approx([0.05, 0.95]) and down == pytest.approx([0.95, 0.05])


@given(
    st.lists(st.floats(min_value=0, max_value=10), min_size=3, max_size=60),
    st.floats(min_value=0, max_value=2),
)
def test_a_guardrail_harm_means_the_whole_interval_lies_beyond_the_margin(
    values: list[float], shift: float
) -> None:
    control, treated = Summary.of(values), Summary.of([v + shift for v in values])
    found = difference(control, treated, 0.5, 0.05)
    assert harmed(control, treated, 0.1, 0.5, 0.05) == (found.lower > 0.1)


def test_summaries_of_counts_and_values() -> None:
    s = Summary.of_counts(30, 100)
    assert (s.n, s.mean, s.successes) == (100, 0.3, 30)
    assert s.var == pytest.approx((31 / 102) * (71 / 102))
    assert Summary.of_counts(10, 10).var > 0  # smoothed: never zero
    v = Summary.of([1.0, 2.0, 3.0])
    assert (v.n, v.mean, v.var) == (3, 2.0, 1.0)
    with pytest.raises(ValueError, match="between 0 and n"):
        Summary.of_counts(11, 10)
