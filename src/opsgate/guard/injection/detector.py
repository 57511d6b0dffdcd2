"""The injection detector: normalise, run the rule families, score with the classifier.

`scan()` is pure and thread-safe (the model is read-only after loading), so one detector serves
every request of a gateway process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opsgate.guard.injection import rules
from opsgate.guard.injection.context import CONTEXT_NAMES, context_fired
from opsgate.guard.injection.model import MODEL_PATH, LinearModel, sigmoid
from opsgate.guard.normalize import NormalizedText, normalize

HIGH_CONFIDENCE_SCORE = 0.99
"""The score a text gets, at least, when a high-confidence rule fires."""
SHOWN_CHANGES = frozenset(
    {
        "zero_width",
        "bidi",
        "homoglyph",
        "leetspeak",
        "control",
        "invalid_utf8",
        "encoded_oversized",
        "decode_budget_spent",
    }
)
"""Folding steps worth naming in `reasons` (NFKC alone is too common to say anything)."""


@dataclass(frozen=True, slots=True)
class InjectionResult:
    """`score` is probability-like (0..1); `reasons` say what fired, e.g. `rule:ignore_previous`,
    `classifier:0.93`, `decoded:base64`, `normalized:homoglyph`."""

    score: float
    is_attack: bool
    reasons: tuple[str, ...]


class InjectionDetector:
    """Prompt-injection and jailbreak detector; `untrusted=True` scans a tool result or
    retrieved document (indirect injection) against its own threshold."""

    offload = False
    """Sub-millisecond: the guard stage runs it on the event loop for short texts."""

    def __init__(
        self,
        model: LinearModel,
        threshold: float | None = None,
        untrusted_threshold: float | None = None,
    ) -> None:
        self.model = model
        self.threshold = model.threshold if threshold is None else threshold
        self.untrusted_threshold = (
            model.untrusted_threshold if untrusted_threshold is None else untrusted_threshold
        )

    @classmethod
    def load(
        cls,
        model_path: str | Path | None = None,
        threshold: float | None = None,
        untrusted_threshold: float | None = None,
    ) -> InjectionDetector:
        """The shipped model (or `model_path`); thresholds default to the ones chosen at
        training time on validation data. Raises `ModelFileError` for a bad file."""
        model = LinearModel.load(Path(model_path) if model_path else MODEL_PATH)
        return cls(model, threshold, untrusted_threshold)

    def scan(
        self, text: str, *, untrusted: bool = False, system_prompt: str | None = None
    ) -> InjectionResult:
        """Score `text`; with `system_prompt` (the instructions the user turn is sent under),
        also whether it asks for what they rule out or keep secret (see `context`)."""
        return self.scan_normalized(
            normalize(text), untrusted=untrusted, system_prompt=system_prompt
        )

    def scan_normalized(
        self,
        folded: NormalizedText,
        *,
        untrusted: bool = False,
        system_prompt: str | None = None,
    ) -> InjectionResult:
        """`scan` for a text already normalised (training and evaluation reuse the folding)."""
        fired = self.fired(folded, system_prompt)
        logit = self.model.bias + self.model.rule_logit(fired)
        logit += max(self.model.logit(view) for view in folded.views)
        threshold = self.untrusted_threshold if untrusted else self.threshold
        return verdict(folded, fired, sigmoid(logit), threshold, source="classifier")

    @staticmethod
    def fired(folded: NormalizedText, system_prompt: str | None = None) -> frozenset[str]:
        """Rule families firing on any view (the folded text or a decoded payload), and the
        context features that hold against `system_prompt`."""
        found: frozenset[str] = frozenset()
        seen: frozenset[bytes] = frozenset()
        for view in folded.views:
            present = rules.words(view)
            found |= rules.fired(view, present)
            seen |= present
        if system_prompt:
            found |= context_fired(system_prompt, " ".join(folded.views), seen)
        return found


HIGH_RULES = frozenset(rule.name for rule in rules.RULES if rule.high)
FEATURE_NAMES = (*rules.RULE_NAMES, *CONTEXT_NAMES)
"""The classifier's dense inputs: one weight each (a model file names the ones it has)."""


def verdict(
    folded: NormalizedText,
    fired: frozenset[str],
    model_score: float,
    threshold: float,
    *,
    source: str,
    notes: tuple[str, ...] = (),
) -> InjectionResult:
    """Any backend's result from its model's score: a high-confidence rule family flags on its
    own (score at least `HIGH_CONFIDENCE_SCORE`); `reasons` name the families that fired, the
    model's own score (`source:0.93`), `notes`, and what normalisation decoded or undid."""
    high = bool(fired & HIGH_RULES)
    score = max(model_score, HIGH_CONFIDENCE_SCORE) if high else model_score
    reasons = [f"rule:{name}" for name in sorted(fired)]
    reasons += [f"{source}:{model_score:.2f}", *notes]
    reasons += sorted(c for c in folded.changes if c.startswith("decoded:"))
    reasons += sorted(f"normalized:{c}" for c in folded.changes & SHOWN_CHANGES)
    return InjectionResult(score, high or score >= threshold, tuple(reasons))
