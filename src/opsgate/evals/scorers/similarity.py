"""Embedding similarity of the output to the expected answer, through the cache's embedder
interface (`opsgate.cache.embed`): the packaged MiniLM locally, or any embeddings model."""

from __future__ import annotations

import numpy as np

from opsgate.cache.embed import Embedder
from opsgate.evals.scorers.base import Sample, Scorer, ScoreResult
from opsgate.evals.scorers.errors import ScorerConfigError


class EmbeddingSimilarity(Scorer):
    """The cosine similarity of output and expected answer, clipped to [0, 1]; with a
    `threshold`, the label says whether it reaches it."""

    kind = "embedding"
    needs = ("output", "expected")

    def __init__(
        self, embedder: Embedder, name: str | None = None, *, threshold: float | None = None
    ) -> None:
        super().__init__(name)
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ScorerConfigError("embedding: threshold must lie in [0, 1]")
        self.embedder = embedder
        self.threshold = threshold

    async def score(self, sample: Sample) -> ScoreResult:
        vectors = await self.embedder.embed([str(sample.output), str(sample.expected)])
        cosine = float(np.clip(np.dot(vectors[0], vectors[1]), 0.0, 1.0))
        label = None if self.threshold is None else ("pass" if cosine >= self.threshold else "fail")
        return ScoreResult(cosine, label, f"cosine {cosine:.3f} ({self.embedder.name})")

    async def aclose(self) -> None:
        await self.embedder.aclose()
