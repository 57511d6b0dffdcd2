"""Embedding similarity of the output to the expected answer, through the cache's embedder
interface (`opsgate.cache.embed`): the packaged MiniLM locally, or any embeddings model.

Rows are scored concurrently; their texts are embedded together (`Batcher`): one model call
for every pair waiting, instead of one call each (a local model is several times faster on a
batch than on the same texts one by one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from opsgate.cache.embed import Embedder, Vectors
from opsgate.evals.scorers.base import Sample, Scorer, ScoreResult
from opsgate.evals.scorers.errors import ScorerConfigError

MAX_BATCH = 128
"""Texts per embedder call."""


class Batcher:
    """`await batcher.embed(texts)`: waiting callers' texts go to the embedder together."""

    def __init__(self, embedder: Embedder, max_batch: int = MAX_BATCH) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self._waiting: list[tuple[list[str], asyncio.Future[Vectors]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def embed(self, texts: Sequence[str]) -> Vectors:
        future: asyncio.Future[Vectors] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(texts), future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch: list[tuple[list[str], asyncio.Future[Vectors]]] = []
            size = 0
            while self._waiting and (
                not batch or size + len(self._waiting[0][0]) <= self.max_batch
            ):
                texts, future = self._waiting.pop(0)
                batch.append((texts, future))
                size += len(texts)
            try:
                vectors = await self.embedder.embed([t for texts, _ in batch for t in texts])
            except Exception as exc:  # every caller of this batch sees the embedder's error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for texts, future in batch:
                if not future.done():
                    future.set_result(vectors[start : start + len(texts)])
                start += len(texts)


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
        self.batcher = Batcher(embedder)
        self.threshold = threshold

    async def score(self, sample: Sample) -> ScoreResult:
        try:
            vectors = await self.batcher.embed([str(sample.output), str(sample.expected)])
        except (RuntimeError, ValueError, OSError) as exc:
            return ScoreResult.failure(f"embedder {self.embedder.name} failed: {exc}")
        cosine = float(np.clip(np.dot(vectors[0], vectors[1]), 0.0, 1.0))
        label = None if self.threshold is None else ("pass" if cosine >= self.threshold else "fail")
        return ScoreResult(cosine, label, f"cosine {cosine:.3f} ({self.embedder.name})")

    async def aclose(self) -> None:
        await self.embedder.aclose()
