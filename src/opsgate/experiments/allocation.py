"""A bandit's next weights: Thompson sampling over the variants' observed outcomes."""

from __future__ import annotations

import time
from collections.abc import Sequence

from opsgate.experiments.model import Experiment
from opsgate.experiments.outcomes import Observed, arms
from opsgate.experiments.reading import ExperimentReader
from opsgate.experiments.stats import Summary, thompson_weights


def bandit_weights(
    exp: Experiment, observed: Sequence[Observed], reader: ExperimentReader, period: float
) -> list[float]:
    """The variants' weights (with the experiment's floor), Beta-Bernoulli for a boolean
    metric's 0/1 outcomes, Normal otherwise. The draws are seeded by the `period` the time falls
    in, so replicas evaluating in the same period agree."""
    boolean, maximize = reader.kind(exp)
    summaries = [
        Summary.of_counts(round(sum(a.outcomes)), len(a.outcomes))
        if boolean and all(v in (0.0, 1.0) for v in a.outcomes)
        else Summary.of(a.outcomes)
        for a in arms(exp.spec, observed)
    ]
    return thompson_weights(
        summaries,
        boolean=boolean,
        floor=exp.spec.floor,
        maximize=maximize,
        seed=int(time.time() // max(period, 1.0)),
    )
