"""The latency sketch: estimates within 1% of the true value at their rank, clamped to the
recorded min and max, mergeable, and the same after a round trip through its stored text."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsgate.store.histogram import (
    RELATIVE_ERROR,
    ZERO_BIN,
    Sketch,
    batch_of,
    bin_of,
    decode,
    percentiles,
    value_of,
)

QS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)


def truth(samples: list[float], q: float) -> float:
    """The sample at rank floor(q * (n - 1)): what `percentiles` estimates."""
    return float(np.quantile(samples, q, method="lower"))


@pytest.mark.parametrize(
    "samples",
    [
        [float(v) for v in range(1, 5001)],
        [random.Random(1).lognormvariate(math.log(505), 0.03) for _ in range(2000)],
        [random.Random(2).uniform(0.1, 3_600_000) for _ in range(3000)],
        [random.Random(3).expovariate(1 / 40) + 0.1 for _ in range(3000)],
        [0.1, 0.1, 0.1, 3_600_000.0],
    ],
    ids=["1..5000", "simulator-like", "0.1ms-1h", "exponential", "extremes"],
)
def test_known_samples_within_the_stated_error(samples: list[float]) -> None:
    sketch = Sketch.of(samples)
    got = percentiles(sketch, QS)
    for q, estimate in zip(QS, got, strict=True):
        assert estimate is not None
        assert estimate == pytest.approx(truth(samples, q), rel=RELATIVE_ERROR), q
    assert got[0] == min(samples) and got[-1] == max(samples)  # the ends are exact


def test_the_reported_case_p95_cannot_pass_the_maximum() -> None:
    """Median 505 ms, maximum 545 ms: the old histogram said p95 683, p99 716."""
    rng = random.Random(7)
    samples = [min(545.0, max(470.0, rng.gauss(505, 12))) for _ in range(400)] + [545.0]
    p50, p95, p99 = percentiles(Sketch.of(samples), (0.5, 0.95, 0.99))
    assert p50 is not None and p95 is not None and p99 is not None
    assert p50 == pytest.approx(truth(samples, 0.5), rel=RELATIVE_ERROR)
    assert p95 <= 545.0 and p99 <= 545.0
    assert p95 == pytest.approx(truth(samples, 0.95), rel=RELATIVE_ERROR)


def test_every_bin_reads_back_within_the_error() -> None:
    for value in np.geomspace(1e-3, 1e9, 20_000):
        estimate = float(value_of([bin_of(float(value))])[0])
        assert abs(estimate - value) <= RELATIVE_ERROR * value * (1 + 1e-9)
    assert bin_of(0) == bin_of(-3) == bin_of(float("nan")) == ZERO_BIN
    assert float(value_of([ZERO_BIN])[0]) == 0.0
    assert bin_of(1e-9) == bin_of(1e-3) and bin_of(1e12) == bin_of(1e9)


def test_empty_sketches_have_no_percentiles() -> None:
    assert percentiles(Sketch(), (0.5, 0.99)) == [None, None]
    both = batch_of([Sketch(), Sketch.of([5.0])])
    assert both.percentiles((0.5,)) == [[None], [5.0]]
    assert both.sketches() == [Sketch(), Sketch.of([5.0])]


@given(st.lists(st.floats(0.0, 5e6, allow_nan=False), min_size=1, max_size=300))
def test_percentiles_are_ordered_and_inside_min_max(samples: list[float]) -> None:
    sketch = Sketch.of(samples)
    p50, p95, p99 = percentiles(sketch, (0.5, 0.95, 0.99))
    assert p50 is not None and p95 is not None and p99 is not None
    assert min(samples) <= p50 <= p95 <= p99 <= max(samples)
    for q, estimate in ((0.5, p50), (0.95, p95), (0.99, p99)):
        true = truth(samples, q)
        if true >= 1e-3:  # below 1 us every latency shares one bin
            assert estimate == pytest.approx(true, rel=RELATIVE_ERROR)


@given(
    st.lists(
        st.lists(st.floats(1e-3, 1e7, allow_nan=False), min_size=0, max_size=40),
        min_size=1,
        max_size=8,
    )
)
def test_merging_sketches_equals_sketching_the_union(parts: list[list[float]]) -> None:
    merged = Sketch.of(parts[0]).merge(*(Sketch.of(p) for p in parts[1:]))
    union = Sketch.of([v for p in parts for v in p])
    assert merged == union
    # the stored text, joined as the SQL read joins rows, decodes to the same sketch
    joined = ",".join(t for t in (Sketch.of(p).encode() for p in parts) if t)
    low, high = (union.min_ms, union.max_ms) if union.bins else (None, None)
    assert decode([joined], [low], [high]).sketches() == [union]


def test_a_bin_named_twice_is_summed() -> None:
    texts = ["5000000000002,5000000000003,7000000000001", None, ""]
    batch = decode(texts, [1.0, None, None], [2.0, None, None])
    assert batch.sketches() == [Sketch((5, 7), (5, 1), 1.0, 2.0), Sketch(), Sketch()]
    with pytest.raises(ValueError, match="malformed"):
        decode(["5000000000002,,"], [1.0], [1.0])
