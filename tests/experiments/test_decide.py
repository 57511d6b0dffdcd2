"""Decisions from synthetic arms: nothing before min_units, a winner, the control winning, no
difference, a guardrail stop, Holm over three variants."""

from __future__ import annotations

from typing import Any

import numpy as np

from opsgate.config.experiments import ExperimentConfig
from opsgate.experiments.decide import Arm, assess


def spec(**changes: Any) -> ExperimentConfig:
    base: dict[str, Any] = {
        "name": "e",
        "traffic": {"model": "m"},
        "variants": [{"name": "a"}, {"name": "b"}],
        "metric": "thumbs",
        "min_units": 50,
    }
    return ExperimentConfig.model_validate({**base, **changes})


def arm(name: str, rate: float, n: int, seed: int, **extra: Any) -> Arm:
    rng = np.random.default_rng(seed)
    outcomes = [float(x) for x in rng.random(n) < rate]
    cost = extra.pop("cost", 0.001)
    return Arm(
        name,
        outcomes,
        units=n,
        requests=n,
        unit_cost=[cost] * n,
        unit_errors=[0.0] * n,
        unit_latencies=[[100.0]] * n,
        **extra,
    )


def test_nothing_is_decided_before_min_units() -> None:
    found = assess(
        [arm("a", 0.1, 40, 1), arm("b", 0.9, 40, 2)], spec(), boolean=True, maximize=True
    )
    assert not found.ready and found.verdict is None


def test_a_clear_winner_and_the_control_winning() -> None:
    found = assess(
        [arm("a", 0.3, 800, 1), arm("b", 0.5, 800, 2)], spec(), boolean=True, maximize=True
    )
    assert found.verdict is not None
    assert (found.verdict.outcome, found.verdict.variant) == ("winner", "b")
    assert found.variants[1].prob_best > 0.99
    worse = assess(
        [arm("a", 0.5, 800, 1), arm("b", 0.3, 800, 2)], spec(), boolean=True, maximize=True
    )
    assert worse.verdict is not None and worse.verdict.variant == "a"
    # for a metric to minimise, the lower rate wins
    low = assess(
        [arm("a", 0.3, 800, 1), arm("b", 0.5, 800, 2)], spec(), boolean=True, maximize=False
    )
    assert low.verdict is not None and low.verdict.variant == "a"


def test_no_difference_once_the_interval_is_inside_the_margin_or_max_units() -> None:
    found = assess(
        [arm("a", 0.5, 20_000, 1), arm("b", 0.5, 20_000, 2)],
        spec(min_effect=0.05),
        boolean=True,
        maximize=True,
    )
    assert found.verdict is not None and found.verdict.outcome == "no_difference"
    capped = assess(
        [arm("a", 0.5, 300, 1), arm("b", 0.5, 300, 2)],
        spec(max_units=300),
        boolean=True,
        maximize=True,
    )
    assert capped.verdict is not None and capped.verdict.outcome == "no_difference"


def test_a_guardrail_stops_a_variant_that_costs_too_much() -> None:
    found = assess(
        [arm("a", 0.3, 200, 1, cost=0.001), arm("b", 0.6, 200, 2, cost=0.002)],
        spec(),
        boolean=True,
        maximize=True,
    )
    assert found.verdict is not None
    assert (found.verdict.outcome, found.verdict.variant) == ("guardrail", "b")
    [cost] = [g for g in found.variants[1].guards if g.name == "cost_per_request"]
    assert cost.status == "harm" and cost.limit is not None and abs(cost.limit - 0.0011) < 1e-12


def test_three_variants_use_holm_and_pick_the_best_significant_one() -> None:
    s = spec(variants=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    found = assess(
        [arm("a", 0.3, 1500, 1), arm("b", 0.36, 1500, 2), arm("c", 0.5, 1500, 3)],
        s,
        boolean=True,
        maximize=True,
    )
    assert found.verdict is not None and found.verdict.variant == "c"
    rows = {v.name: v for v in found.variants}
    assert rows["c"].p_adjusted is not None and rows["b"].p_adjusted is not None
    raw_b = rows["b"].diff.p_value if rows["b"].diff else 1.0
    assert rows["b"].p_adjusted >= raw_b  # adjusted upwards
    assert abs(sum(v.prob_best for v in found.variants) - 1.0) < 1e-9
