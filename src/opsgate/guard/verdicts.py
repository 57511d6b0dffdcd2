"""The guard's plain types: what a detector finds, what a policy does, what a trace keeps.

A `Finding` holds the matched value only for as long as the request needs it (to redact or to
compare); a `Verdict`, which goes on the trace, metrics and alerts, never carries values: only
the check, the action taken and the entity types with their counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsgate.config.guard import (
    MODERATION_TYPES,
    NER_TYPES,
    PII_TYPES,
    SECRET_TYPES,
    Action,
    Check,
    DataAction,
    InjectionAction,
    OutputAction,
    OversizeAction,
    Stage,
    is_moderation,
)

__all__ = [
    "MODERATION_TYPES",
    "NER_TYPES",
    "PII_TYPES",
    "SECRET_TYPES",
    "Action",
    "Check",
    "DataAction",
    "Finding",
    "InjectionAction",
    "OutputAction",
    "OversizeAction",
    "Stage",
    "Verdict",
    "is_moderation",
    "tally",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected span of `text[start:end]`; `kind` is an entity type above."""

    kind: str
    start: int
    end: int
    value: str
    score: float = 1.0

    def overlaps(self, other: Finding) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one check concluded for one request, as traces, metrics and alerts see it."""

    check: Check
    stage: Stage
    action: Action
    types: tuple[tuple[str, int], ...] = ()
    """(entity type or reason, count), sorted by type: never the values themselves."""
    score: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "stage": self.stage, "action": self.action}
        if self.types:
            out["types"] = dict(self.types)
        if self.score is not None:
            out["score"] = round(self.score, 4)
        return out


def tally(findings: list[Finding]) -> tuple[tuple[str, int], ...]:
    """(kind, count) pairs for a verdict, sorted so equal verdicts compare equal."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return tuple(sorted(counts.items()))
