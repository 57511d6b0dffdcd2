"""The drift statistics: reference values, properties (hypothesis) and calibration by
simulation (bounded: a few hundred small tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from opsgate.drift.stats import (
    binomial_interval,
    chi_square,
    cluster_shifts,
    combine,
    cusum_path,
    cusum_test,
    energy_test,
    holm,
    ks_test,
    mean_test,
    psi,
    psi_counts,
)

samples = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=30)


def test_energy_statistic_is_scipys_energy_distance_squared() -> None:
    x = np.array([0.0, 1.0, 3.0, 4.5])
    y = np.array([2.0, 2.5, 7.0])
    result = energy_test(x, y, permutations=9)
    assert result.statistic == pytest.approx(sps.energy_distance(x, y) ** 2)


def test_energy_statistic_by_hand() -> None:
    # x = {0, 2}, y = {1}: E|X-Y| = 1, E|X-X'| = (0+2+2+0)/4 = 1, E|Y-Y'| = 0 -> E = 2 - 1 - 0
    result = energy_test([[0.0], [2.0]], [[1.0], [1.0]], permutations=9)
    assert result.statistic == pytest.approx(1.0)
    assert result.effect == pytest.approx(0.5)


@settings(max_examples=40, deadline=None)
@given(samples, samples, st.integers(0, 1000))
def test_energy_is_non_negative_symmetric_and_p_is_a_valid_permutation_p(
    a: list[float], b: list[float], seed: int
) -> None:
    ab = energy_test(a, b, permutations=19, seed=seed)
    ba = energy_test(b, a, permutations=19, seed=seed)
    assert ab.statistic >= -1e-6
    assert ab.statistic == pytest.approx(ba.statistic, rel=1e-6, abs=1e-6)
    assert 1 / 20 <= ab.p_value <= 1.0
    assert round(ab.p_value * 20) == pytest.approx(ab.p_value * 20)
    assert 0.0 <= ab.effect <= 1.0 + 1e-9


@settings(max_examples=25, deadline=None)
@given(samples, st.floats(-100, 100), st.floats(0.1, 10))
def test_energy_is_invariant_to_shifting_and_scales_with_scaling(
    a: list[float], shift: float, scale: float
) -> None:
    b = [*list(reversed(a))[:-1], a[0] + 1.0]
    base = energy_test(a, b, permutations=9).statistic
    moved = energy_test([v + shift for v in a], [v + shift for v in b], permutations=9)
    scaled = energy_test([v * scale for v in a], [v * scale for v in b], permutations=9)
    assert moved.statistic == pytest.approx(base, rel=1e-5, abs=1e-3)
    assert scaled.statistic == pytest.approx(base * scale, rel=1e-5, abs=1e-3)


def test_energy_detects_a_shift_and_not_a_copy() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 8))
    assert energy_test(x, x + 0.6, permutations=99).p_value == pytest.approx(0.01)
    assert energy_test(x[:40], x[40:], permutations=99).p_value > 0.05


def test_energy_refuses_tiny_samples() -> None:
    with pytest.raises(ValueError, match="two rows"):
        energy_test([[1.0]], [[1.0], [2.0]])


def test_psi_reference_value() -> None:
    # two bins of the reference's median: 50/50 against 80/20
    assert psi_counts([50, 50], [80, 20]) == pytest.approx(
        (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    )
    assert psi(np.arange(100), np.arange(100)) == pytest.approx(0.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=6), st.lists(st.integers(0, 50)))
def test_psi_is_non_negative_and_symmetric(a: list[int], b: list[int]) -> None:
    b = (b + [1] * len(a))[: len(a)]
    if sum(a) == 0 or sum(b) == 0:
        return
    assert psi_counts(a, b) >= -1e-12
    assert psi_counts(a, b) == pytest.approx(psi_counts(b, a))


def test_ks_matches_scipy_and_reports_psi() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=200), rng.normal(1.0, 1, size=150)
    result = ks_test(x, y)
    expected = sps.ks_2samp(x, y, method="asymp")
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.p_value < 0.01
    assert result.effect == pytest.approx(psi(x, y))


def test_chi_square_reference_values() -> None:
    table = [[30, 10, 60], [20, 30, 50]]
    stat, p, _, _ = sps.chi2_contingency(np.array(table), correction=False)
    result = chi_square(table)
    assert result.statistic == pytest.approx(stat)
    assert result.p_value == pytest.approx(p)
    small = chi_square([[9, 1], [5, 5]])  # expected count 3 < 5: Fisher's exact test
    assert small.p_value == pytest.approx(sps.fisher_exact([[9, 1], [5, 5]])[1])
    assert chi_square([[5, 0], [7, 0]]).p_value == 1.0  # one category: nothing to compare


def test_cusum_path_by_hand() -> None:
    # mean 0, sd 1, k 0.5: z = -1, -1, +2 -> lower 0.5, 1.0, 0 ; upper 0, 0, 1.5
    assert list(cusum_path([-1.0, -1.0, 2.0], 0.0, 1.0, k=0.5)) == [0.5, 1.0, 1.5]


def test_cusum_catches_a_drop_and_not_noise() -> None:
    rng = np.random.default_rng(5)
    ref = (rng.random(2000) < 0.8).astype(float)
    same = cusum_test(ref, (rng.random(400) < 0.8).astype(float), alpha=0.01, seed=1)
    drop = cusum_test(ref, (rng.random(400) < 0.6).astype(float), alpha=0.01, seed=1)
    assert drop.alarm_at is not None and drop.p_value <= 0.01 and drop.shift < 0
    assert drop.statistic > drop.threshold
    assert same.p_value > 0.01 or same.alarm_at is None


def test_holm_reference_example() -> None:
    # Holm 1979: sorted p 0.01, 0.04, 0.03, 0.005 at alpha 0.05: thresholds .0125, .0167, .025, .05
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]
    assert holm([], 0.05) == []


@given(st.lists(st.floats(0, 1), min_size=1, max_size=10), st.floats(0.001, 0.2))
def test_holm_rejects_at_least_bonferroni_and_never_more_than_raw(
    ps: list[float], alpha: float
) -> None:
    rejected = holm(ps, alpha)
    for p, r in zip(ps, rejected, strict=True):
        if p * len(ps) <= alpha:
            assert r
        if r:
            assert p <= alpha
    assert (combine(ps) <= alpha) == any(p * len(ps) <= alpha for p in ps)


def test_mean_test_and_interval_reference_values() -> None:
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0, 6.0]
    assert mean_test(x, y).p_value == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue)
    low, high = binomial_interval(5, 100)
    assert low == pytest.approx(0.0215, abs=1e-4)
    assert high == pytest.approx(0.1118, abs=1e-4)


def test_cluster_shares_name_the_cluster_that_grew() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0, 0.1, size=(90, 4)) + np.array([1, 0, 0, 0])
    b = rng.normal(0, 0.1, size=(90, 4)) + np.array([0, 1, 0, 0])
    ref = np.vstack([a[:80], b[:5]])
    cur = np.vstack([a[80:], b[5:]])  # the `b` topic grows from 6% to 89%
    shifts, test = cluster_shifts(ref, cur, k=2)
    top = shifts[0]
    assert top.delta > 0.7 and not top.from_reference
    assert all(cur[i][1] > 0.5 for i in top.examples)
    assert test.p_value < 1e-6


ALPHA = 0.05


def _rate_within_interval(alarms: int, reps: int) -> None:
    """The simulated rate is consistent with alpha or under it (a valid test may be
    conservative, never liberal): alpha is not below the 99% interval's lower end."""
    low, _ = binomial_interval(alarms, reps, 0.99)
    assert low <= ALPHA, f"false-alarm rate {alarms}/{reps} above alpha {ALPHA}"


def test_energy_false_alarm_rate_matches_alpha_under_no_shift() -> None:
    rng = np.random.default_rng(11)
    reps = 300
    alarms = sum(
        energy_test(
            rng.normal(size=(30, 4)), rng.normal(size=(30, 4)), permutations=39, seed=r
        ).p_value
        <= ALPHA
        for r in range(reps)
    )
    _rate_within_interval(alarms, reps)
    assert alarms >= 3  # and not vacuously silent: an exact test alarms ~5% of the time


def test_ks_chi_square_and_cusum_false_alarm_rates_under_no_shift() -> None:
    rng = np.random.default_rng(12)
    reps = 200
    ks = sum(
        ks_test(rng.normal(size=60), rng.normal(size=60)).p_value <= ALPHA for _ in range(reps)
    )
    chi = sum(
        chi_square(
            [rng.multinomial(80, [0.5, 0.3, 0.2]), rng.multinomial(80, [0.5, 0.3, 0.2])]
        ).p_value
        <= ALPHA
        for _ in range(reps)
    )
    cus = sum(
        cusum_test(
            (rng.random(300) < 0.8).astype(float),
            (rng.random(60) < 0.8).astype(float),
            alpha=ALPHA,
            sims=200,
            seed=r,
        ).alarm_at
        is not None
        for r in range(reps)
    )
    for alarms in (ks, chi, cus):
        _rate_within_interval(alarms, reps)
