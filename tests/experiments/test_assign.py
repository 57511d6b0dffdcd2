"""Sticky assignment by hash: uniform points, weights respected, the same answer every time,
independent salts, exclusion-group slots that never overlap."""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from opsgate.experiments.assign import enters, in_slot, pick, place, point, variant_index


def test_points_are_uniform_and_variants_follow_the_weights() -> None:
    units = [f"user-{i}" for i in range(20_000)]
    deciles = Counter(int(point("salt", u) * 10) for u in units)
    # chi-square with 9 degrees of freedom; 27.9 is its 0.999 quantile
    chi2 = sum((c - 2000) ** 2 / 2000 for c in deciles.values())
    assert chi2 < 27.9
    split = Counter(variant_index("salt", u, [0.2, 0.3, 0.5]) for u in units)
    for index, share in enumerate([0.2, 0.3, 0.5]):
        assert abs(split[index] / len(units) - share) < 0.015


def test_the_same_unit_gets_the_same_variant_and_salts_are_independent() -> None:
    units = [f"u{i}" for i in range(5000)]
    first = [variant_index("exp-a", u, [0.5, 0.5]) for u in units]
    assert first == [variant_index("exp-a", u, [0.5, 0.5]) for u in units]
    other = [variant_index("exp-b", u, [0.5, 0.5]) for u in units]
    agree = sum(a == b for a, b in zip(first, other, strict=True)) / len(units)
    assert 0.46 < agree < 0.54  # unrelated experiments split users independently
    inside = [u for u in units if enters("exp-a", u, 0.2)]
    assert 0.18 < len(inside) / len(units) < 0.22
    # the share's hash is not the variant's: units in the share still split 50/50
    assert 0.45 < sum(variant_index("exp-a", u, [0.5, 0.5]) for u in inside) / len(inside) < 0.55


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=8), st.floats(0, 0.999))
def test_pick_never_chooses_a_zero_weight(weights: list[float], at: float) -> None:
    if sum(weights) == 0:
        return
    assert weights[pick(weights, at)] > 0


@given(st.lists(st.floats(min_value=0.01, max_value=0.5), min_size=1, max_size=10))
def test_group_slots_never_overlap(shares: list[float]) -> None:
    taken: list[tuple[float, float]] = []
    for share in shares:
        start = place(share, taken)
        if start is None:  # no gap is wide enough
            edges = sorted(taken)
            gaps = [b[0] - (a[0] + a[1]) for a, b in itertools.pairwise(edges)]
            gaps += [edges[0][0], 1 - (edges[-1][0] + edges[-1][1])]
            assert max(gaps) < share
            continue
        assert start >= 0 and start + share <= 1 + 1e-9
        assert all(start + share <= s + 1e-12 or s + w <= start + 1e-12 for s, w in taken)
        taken.append((start, share))


def test_a_unit_is_in_at_most_one_experiment_of_a_group() -> None:
    slots = [(0.0, 0.3), (0.3, 0.3), (0.6, 0.4)]
    for i in range(3000):
        unit = f"user-{i}"
        assert sum(in_slot("checkout", unit, s, w) for s, w in slots) == 1
