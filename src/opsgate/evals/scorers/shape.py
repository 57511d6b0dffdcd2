"""Rule scorers about an answer's shape: JSON validity, length bounds, refusal detection.

They need only the output, so best-of-n re-ranking (experiments/best_of/) and online scoring can
use them on live answers as eval runs do on dataset rows.
"""

from __future__ import annotations

import re

from opsgate.evals.scorers.base import Sample, Scorer, ScoreResult
from opsgate.evals.scorers.errors import ScorerConfigError
from opsgate.evals.scorers.rules import MAX_SCANNED, parse_json

REFUSALS = (
    r"\bI(?:'m| am) (?:sorry|afraid)\b",
    r"\bI (?:can(?:'|no)t|cannot|won't|will not|am unable to|'m unable to|am not able to)"
    r" (?:help|assist|comply|provide|do that|fulfil|answer|share)",
    r"\bas an AI(?: language model)?\b",
    r"\bI must (?:decline|refuse)\b",
    r"\b(?:against|violates?) (?:my|our|the) (?:guidelines|policies|policy)\b",
)
"""English refusal phrasings; `patterns` replaces them."""


class JsonValid(Scorer):
    """1 when the output parses as JSON (a code fence around it allowed); `object: true` also
    needs a JSON object at the top."""

    kind = "json"

    def __init__(self, name: str | None = None, *, object: bool = False) -> None:
        super().__init__(name)
        self.object = object

    async def score(self, sample: Sample) -> ScoreResult:
        assert sample.output is not None
        try:
            value = parse_json(sample.output)
        except ValueError as exc:
            return ScoreResult.boolean(False, f"not JSON: {exc}")
        if self.object and not isinstance(value, dict):
            return ScoreResult.boolean(False, f"JSON {type(value).__name__}, not an object")
        return ScoreResult.boolean(True)


class Length(Scorer):
    """1 when the output's length (`unit`: chars or words) lies within [`min`, `max`]."""

    kind = "length"

    def __init__(
        self,
        name: str | None = None,
        *,
        min: int | None = None,
        max: int | None = None,
        unit: str = "chars",
    ) -> None:
        super().__init__(name)
        if unit not in ("chars", "words"):
            raise ScorerConfigError(f"length: unit must be `chars` or `words`, not {unit!r}")
        if min is None and max is None:
            raise ScorerConfigError("length: give `min`, `max` or both")
        if (min is not None and min < 0) or (min is not None and max is not None and max < min):
            raise ScorerConfigError("length: need 0 <= min <= max")
        self.low, self.high, self.unit = min, max, unit

    async def score(self, sample: Sample) -> ScoreResult:
        assert sample.output is not None
        text = sample.output
        size = len(text) if self.unit == "chars" else len(text.split())
        ok = (self.low is None or size >= self.low) and (self.high is None or size <= self.high)
        return ScoreResult.boolean(ok, f"{size} {self.unit}")


class Refusal(Scorer):
    """1 when the output is NOT a refusal (higher is better, as for every scorer): no
    refusal phrase in its first `window` characters."""

    kind = "refusal"

    def __init__(
        self, name: str | None = None, *, patterns: list[str] | None = None, window: int = 400
    ) -> None:
        super().__init__(name)
        try:
            self.pattern = re.compile("|".join(patterns or REFUSALS), re.IGNORECASE)
        except re.error as exc:
            raise ScorerConfigError(f"refusal: bad pattern: {exc}") from None
        if window <= 0:
            raise ScorerConfigError("refusal: window must be positive")
        self.window = min(window, MAX_SCANNED)

    async def score(self, sample: Sample) -> ScoreResult:
        assert sample.output is not None
        text = sample.output.replace("\u2019", "'")[: self.window]
        found = self.pattern.search(text)
        if found is None:
            return ScoreResult.boolean(True)
        return ScoreResult(0.0, "refusal", f"refusal: {found.group(0)!r}")
