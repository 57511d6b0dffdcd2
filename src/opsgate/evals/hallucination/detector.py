"""The local hallucination detector: is an answer supported by the knowledge it was given?

Pure Python and numpy on CPU, no network, a fraction of a millisecond per answer; `score()` is
thread-safe (the model is read-only after loading). It judges support, not truth: an answer
that is right but not in the knowledge counts as unsupported, which is what a RAG faithfulness
check wants. Without knowledge every claim is unsupported, so it is not meant for that case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opsgate.evals.hallucination.features import analyse
from opsgate.evals.hallucination.model import MODEL_PATH, SupportModel

SHOWN_WORDS = 5


@dataclass(frozen=True, slots=True)
class HallucinationResult:
    """`score`: the probability that the answer is not supported by the knowledge; `reasons`
    name the answer's words the knowledge does not contain (`unsupported:bc`)."""

    score: float
    hallucinated: bool
    reasons: tuple[str, ...]


class HallucinationDetector:
    def __init__(self, model: SupportModel, threshold: float | None = None) -> None:
        self.model = model
        self.threshold = model.threshold if threshold is None else threshold

    @classmethod
    def load(cls, path: Path = MODEL_PATH, threshold: float | None = None) -> HallucinationDetector:
        return cls(SupportModel.load(path), threshold)

    def score(self, knowledge: str, question: str, answer: str) -> HallucinationResult:
        analysis = analyse(knowledge, question, answer)
        probability = self.model.probability(analysis.vector)
        reasons = tuple(f"unsupported:{w}" for w in analysis.unsupported[:SHOWN_WORDS])
        return HallucinationResult(probability, probability >= self.threshold, reasons)
