"""The scorer interface: a `Sample` in, a `ScoreResult` out.

A scorer names the sample fields it needs (`needs`); `apply()` checks them first, so a row
missing one is a failed result that says which field, never an exception. Every built-in
scorer's value lies in [0, 1] and higher is better (the hallucination scorer reports support,
1 - the probability of a hallucination), so `--fail-under NAME=0.8` reads the same for all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

FIELDS = ("input", "output", "expected", "context")


@dataclass(frozen=True, slots=True)
class Sample:
    """One row to score: the target's `output` for `input`, with the row's `expected` answer
    and `context` (retrieved knowledge) when it has them; `row` is the whole dataset row."""

    input: str | None = None
    output: str | None = None
    expected: str | None = None
    context: str | None = None
    row: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """A named field: one of `FIELDS`, else a key of the row (custom scorers)."""
        return getattr(self, name) if name in FIELDS else self.row.get(name)


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """`value` in [0, 1] (None when scoring failed, and then `error` says why); `label` is
    an optional category (`pass`, `A`, `hallucinated`); `cost_micros`/`tokens` count judge
    calls."""

    value: float | None
    label: str | None = None
    reason: str = ""
    error: str | None = None
    cost_micros: int = 0
    tokens: int = 0

    @property
    def failed(self) -> bool:
        return self.error is not None

    @classmethod
    def boolean(cls, ok: bool, reason: str = "") -> ScoreResult:
        return cls(1.0 if ok else 0.0, "pass" if ok else "fail", reason)

    @classmethod
    def failure(cls, error: str) -> ScoreResult:
        return cls(None, error=error)


class Scorer(ABC):
    """Scores one sample. `kind` is the registered type (`exact`), `name` the metric a run
    reports (defaults to the kind; two scorers of one kind need distinct names)."""

    kind: ClassVar[str]
    needs: tuple[str, ...] = ("output",)
    calls_models: ClassVar[bool] = False
    """It asks a model (a judge): it costs money, so online scoring caps it per hour."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.kind

    @abstractmethod
    async def score(self, sample: Sample) -> ScoreResult:
        """Score a sample whose `needs` are all present (see `apply`)."""

    async def aclose(self) -> None:
        """Release what the scorer holds (HTTP sessions, models)."""
        return None


def missing(scorer: Scorer, sample: Sample) -> list[str]:
    return [n for n in scorer.needs if sample.get(n) is None]


async def apply(scorer: Scorer, sample: Sample) -> ScoreResult:
    """`scorer.score(sample)`, or a failed result naming the fields the row lacks."""
    if absent := missing(scorer, sample):
        names = ", ".join(f"`{n}`" for n in absent)
        return ScoreResult.failure(f"row has no {names} (needed by {scorer.name})")
    return await scorer.score(sample)
