"""The local hallucination detector as a scorer: is the output supported by the context?"""

from __future__ import annotations

from opsgate.evals.hallucination import HallucinationDetector
from opsgate.evals.scorers.base import Sample, Scorer, ScoreResult


class Hallucination(Scorer):
    """Value = 1 - the detector's probability of a hallucination (higher is better, like
    every scorer); label `hallucinated` or `supported` at the detector's threshold."""

    kind = "hallucination"
    needs = ("input", "output", "context")

    def __init__(
        self, detector: HallucinationDetector | None = None, name: str | None = None
    ) -> None:
        super().__init__(name)
        self.detector = detector or HallucinationDetector.load()

    async def score(self, sample: Sample) -> ScoreResult:
        result = self.detector.score(str(sample.context), str(sample.input), str(sample.output))
        label = "hallucinated" if result.hallucinated else "supported"
        return ScoreResult(1.0 - result.score, label, " ".join(result.reasons))
