"""Bootstrap intervals and the paired bootstrap against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from opsgate.evals.runs.stats import bootstrap_ci, paired_bootstrap


def test_constant_values_have_a_zero_width_interval() -> None:
    est = bootstrap_ci([0.5, 0.5, 0.5])
    assert (est.n, est.mean, est.low, est.high) == (3, 0.5, 0.5, 0.5)
    assert math.isnan(bootstrap_ci([]).mean)


def test_the_interval_of_a_coin_holds_the_mean_and_is_seeded() -> None:
    values = [1.0, 0.0] * 50
    est = bootstrap_ci(values)
    assert est.mean == 0.5
    # the standard error of the mean is 0.05: a 95% interval is about +-0.098
    assert est.low == pytest.approx(0.5 - 0.098, abs=0.02)
    assert est.high == pytest.approx(0.5 + 0.098, abs=0.02)
    assert bootstrap_ci(values) == est


def test_paired_bootstrap_by_hand() -> None:
    # differences b - a = [0, 0, 1]: a resample's mean is 0 unless it draws the 1;
    # P(mean <= 0) = (2/3)^3 = 8/27 and P(mean >= 0) = 1, so p = 2 * 8/27 = 16/27.
    a, b = [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]
    paired = paired_bootstrap(a, b, iterations=40_000)
    assert paired.n == 3
    assert [paired.mean_a, paired.mean_b] == pytest.approx([1 / 3, 2 / 3])
    assert paired.diff == pytest.approx(1 / 3)
    assert paired.p_value == pytest.approx(16 / 27, abs=0.015)
    assert (paired.low, paired.high) == (0.0, 1.0)  # 2.5% / 97.5% of {0, 1/3, 2/3, 1}
    assert not paired.significant


def test_a_consistent_improvement_is_significant() -> None:
    a = [0.0] * 30
    b = [1.0] * 25 + [0.0] * 5
    paired = paired_bootstrap(a, b)
    assert paired.diff == pytest.approx(25 / 30)
    assert paired.p_value == 0.0 and paired.significant
    same = paired_bootstrap([1.0, 0.0], [1.0, 0.0])
    assert (same.diff, same.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([1.0], [1.0, 0.0])
