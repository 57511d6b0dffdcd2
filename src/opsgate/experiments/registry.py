"""The request path's view of the experiments: an in-memory index by traffic, and the choice
of a variant for a unit. Rebuilt whenever the stored experiments change (the service's feed);
a lookup is a dict read and up to three hashes, no I/O.

Bandit experiments (`allocation: thompson`) change weights over time, so a hash alone would move
units between variants; their units are remembered (`experiment_assignments`): a unit seen
before keeps its variant (memory first, then the store), a new one is placed by the current
weights and remembered in the background.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from opsgate.config.experiments import VariantConfig
from opsgate.experiments.assign import enters, in_slot, variant_index
from opsgate.experiments.model import Experiment

STICKY_UNITS = 100_000
"""Bandit units remembered in memory per process (least recently used beyond)."""


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: Experiment
    variant: VariantConfig
    unit: str
    new: bool = False
    """A bandit unit placed now (to be remembered)."""


class Registry:
    def __init__(self, experiments: Iterable[Experiment] = ()) -> None:
        self.by_traffic: dict[str, list[Experiment]] = {}
        for exp in experiments:
            if exp.assigning:
                self.by_traffic.setdefault(exp.spec.traffic.key, []).append(exp)
        self.sticky: OrderedDict[tuple[str, str], str] = OrderedDict()

    def candidates(self, traffic: str) -> list[Experiment]:
        return self.by_traffic.get(traffic, [])

    def remember(self, name: str, unit: str, variant: str) -> None:
        key = (name, unit)
        self.sticky[key] = variant
        self.sticky.move_to_end(key)
        while len(self.sticky) > STICKY_UNITS:
            self.sticky.popitem(last=False)

    def known(self, name: str, unit: str) -> str | None:
        return self.sticky.get((name, unit))


def admits(exp: Experiment, unit: str) -> bool:
    """Whether the unit enters this experiment (group slot or traffic share)."""
    spec = exp.spec
    if spec.exclusion_group is not None:
        return in_slot(spec.exclusion_group, unit, exp.slot_start, spec.share)
    return enters(spec.salt_text, unit, spec.share)


def choose(exp: Experiment, unit: str, remembered: str | None = None) -> Assignment:
    """The unit's variant: the promoted one, a bandit's remembered one, else by the hash."""
    spec = exp.spec
    if exp.status == "promoted" and exp.promoted is not None:
        found = spec.variant(exp.promoted)
        if found is not None:
            return Assignment(exp, found, unit)
    if remembered is not None:
        found = spec.variant(remembered)
        if found is not None:
            return Assignment(exp, found, unit)
    index = variant_index(spec.salt_text, unit, exp.current_weights())
    return Assignment(exp, spec.variants[index], unit, new=spec.allocation == "thompson")
