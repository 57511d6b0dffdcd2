"""Thresholds from grouped out-of-fold scores of the training part (never from held-out rows).

A single threshold over all benign prompts is set by whichever source is most numerous: with
`injection/train.jsonl` that is WildGuard and CyberSecEval's benign security requests, which
the detector is not measured on. So the prompt threshold is chosen on the benign *families*
the dev file measures (role-play, code, NotInject, XSTest; a training-only row of one of those
families counts too), twice: the pooled rows at `target_fpr`, and each family at `source_fpr`,
and the higher threshold wins. The other sources' out-of-fold rates are printed, not used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from opsgate.tools.injection.data import Example

Floats = npt.NDArray[np.float64]
_VARIANT = re.compile(r"(?:_extra|_\d+)$")


def family(source: str) -> str:
    """`gpteacher_roleplay_extra` and `gpteacher_roleplay` are one family, as are
    `notinject_1..3`."""
    return _VARIANT.sub("", source)


def threshold_at(negative_scores: Floats, target_fpr: float) -> float:
    """The lowest threshold that flags at most `target_fpr` of these negatives."""
    ranked = np.sort(negative_scores)[::-1]
    allowed = int(np.floor(target_fpr * len(ranked)))
    if allowed >= len(ranked):
        return 0.0
    return float(np.nextafter(ranked[allowed], np.inf))  # just above it, whatever its scale


def measured_families(examples: Sequence[Example]) -> set[str]:
    """Families of the benign prompts of the dev file (not `extra`)."""
    return {family(ex.source) for ex in examples if not ex.extra and not ex.label}


def prompt_threshold(
    examples: Sequence[Example], scores: Floats, target_fpr: float, source_fpr: float
) -> float:
    """The threshold for prompts (see the module docstring)."""
    wanted = measured_families(examples)
    by_family: dict[str, list[float]] = {}
    for ex, score in zip(examples, scores, strict=True):
        if not ex.label and not ex.untrusted and family(ex.source) in wanted:
            by_family.setdefault(family(ex.source), []).append(float(score))
    if not by_family:  # no dev rows at all: every benign prompt
        benign = [float(s) for ex, s in zip(examples, scores, strict=True) if not ex.label]
        by_family = {"all": benign} if benign else {}
    if not by_family:
        return 0.5
    pooled = np.array([s for rows in by_family.values() for s in rows])
    chosen = [threshold_at(pooled, target_fpr)]
    chosen += [threshold_at(np.array(rows), source_fpr) for rows in by_family.values()]
    return max(chosen)
