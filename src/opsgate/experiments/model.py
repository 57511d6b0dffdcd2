"""The experiment records: a definition with its state, a decision, a log entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from opsgate.config.experiments import ExperimentConfig

Status = Literal["running", "paused", "stopped", "promoted"]
STATUSES: tuple[Status, ...] = ("running", "paused", "stopped", "promoted")
Outcome = Literal["winner", "no_difference", "guardrail"]
Source = Literal["config", "api"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the statistics concluded, once (a decision is never taken back)."""

    outcome: Outcome
    variant: str | None
    """The winner, or the variant a guardrail stopped; None for no difference."""
    at: float
    reason: str

    @property
    def text(self) -> str:
        if self.outcome == "winner":
            return f"winner: {self.variant}"
        if self.outcome == "guardrail":
            return "stopped by guardrail"
        return "no difference"

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "variant": self.variant,
            "at": self.at,
            "reason": self.reason,
            "text": self.text,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        return cls(data["outcome"], data.get("variant"), float(data["at"]), str(data["reason"]))


@dataclass(frozen=True, slots=True)
class Experiment:
    """A definition and its state, as stored."""

    spec: ExperimentConfig
    team_id: str
    source: Source
    status: Status
    slot_start: float
    created_at: float
    updated_at: float
    created_by: str | None = None
    decision: Decision | None = None
    promoted: str | None = None
    """The variant promoted (status `promoted`): model and parameter variants keep serving it
    to all of the experiment's traffic; a prompt variant's label now points at it."""
    weights: tuple[float, ...] | None = None
    """A bandit's latest allocation (None: the fixed split of the definition)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def assigning(self) -> bool:
        """Whether requests of its traffic get a variant now."""
        return self.status == "running" or (
            self.status == "promoted" and self.promoted is not None and not self.prompt_variants
        )

    @property
    def prompt_variants(self) -> bool:
        return any(v.prompt_version is not None for v in self.spec.variants)

    def current_weights(self) -> list[float]:
        if self.weights is not None and len(self.weights) == len(self.spec.variants):
            return list(self.weights)
        return self.spec.weights()


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of an experiment's decision log."""

    seq: int
    experiment: str
    at: float
    kind: str
    """created, config_changed, paused, resumed, stopped, decision, promoted, allocation"""
    actor: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "actor": self.actor,
            "detail": self.detail,
        }
