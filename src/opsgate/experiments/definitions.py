"""The checks a new or changed experiment definition passes, and its exclusion-group slot."""

from __future__ import annotations

from collections.abc import Iterable

from opsgate.config.experiments import (
    ExperimentConfig,
    ExperimentError,
    check_experiment,
    check_experiments,
)
from opsgate.config.schema import Config
from opsgate.errors import BadRequestError
from opsgate.experiments.assign import place
from opsgate.experiments.model import Experiment, Status

ACTIVE: tuple[Status, ...] = ("running", "paused")


def check_spec(
    config: Config,
    experiments: Iterable[Experiment],
    spec: ExperimentConfig,
    *,
    replacing: str | None = None,
) -> None:
    """400 for an unknown metric or model, an overlap outside an exclusion group, a full
    group (the same rules as the config file)."""
    models = {m.name for m in config.models}
    try:
        check_experiment(spec, metrics=config.feedback.metrics, models=models)
        live = [e.spec for e in experiments if e.status in ACTIVE]
        check_experiments([s for s in live if s.name != replacing] + [spec])
    except ExperimentError as exc:
        raise BadRequestError(str(exc), code="invalid_experiment", param=exc.field) from None


def slot_for(spec: ExperimentConfig, stored: Iterable[Experiment]) -> float:
    """Where the experiment's slot starts in its exclusion group (0 outside one); 400 when the
    group has no room for its share."""
    if spec.exclusion_group is None:
        return 0.0
    taken = [
        (e.slot_start, e.spec.share)
        for e in stored
        if e.spec.exclusion_group == spec.exclusion_group and e.status in ACTIVE
    ]
    found = place(spec.share, taken)
    if found is None:
        raise BadRequestError(
            f"exclusion group {spec.exclusion_group!r} has no room for a share of {spec.share:g}",
            code="invalid_experiment",
            param="share",
        )
    return found
