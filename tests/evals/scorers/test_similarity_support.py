"""Embedding similarity (hashing embedder by hand, the packaged MiniLM when installed) and the
hallucination detector as a scorer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from opsgate.cache.embed import HashingEmbedder, Vectors
from opsgate.evals.scorers import (
    EmbeddingSimilarity,
    Hallucination,
    Sample,
    ScorerResources,
    apply,
    build_scorer,
)
from tests.fixtures.needs import import_or_need


async def test_cosine_of_the_two_vectors_by_hand() -> None:
    embedder = HashingEmbedder(256)
    scorer = EmbeddingSimilarity(embedder, threshold=0.5)
    vectors = await embedder.embed(["the cat sat", "the cat sat down"])
    expected = float(np.clip(vectors[0] @ vectors[1], 0, 1))
    result = await apply(scorer, Sample(output="the cat sat", expected="the cat sat down"))
    assert result.value == pytest.approx(expected)
    assert result.label == ("pass" if expected >= 0.5 else "fail")
    same = await apply(scorer, Sample(output="hello there", expected="hello there"))
    assert same.value == pytest.approx(1.0, abs=1e-6) and same.label == "pass"


async def test_the_packaged_minilm_ranks_a_paraphrase_above_an_unrelated_answer() -> None:
    import_or_need("sentence_transformers", "the embed extra (MiniLM)")
    scorer = build_scorer({"type": "embedding"}, ScorerResources())
    expected = "You can get a refund within 30 days of purchase."
    close = await apply(scorer, Sample(output="Refunds are possible for 30 days after buying.",
                                       expected=expected))  # fmt: skip
    far = await apply(scorer, Sample(output="Our office is in Berlin.", expected=expected))
    assert close.value is not None and far.value is not None
    assert close.value > far.value + 0.2
    await scorer.aclose()


async def test_the_hallucination_scorer_reports_support() -> None:
    scorer = Hallucination()
    knowledge = "The Oberoi Group is a hotel company with its head office in Delhi."
    question = "Where is the Oberoi Group's head office?"
    good = await apply(scorer, Sample(input=question, output="Delhi", context=knowledge))
    bad = await apply(
        scorer, Sample(input=question, output="It is in Mumbai since 1952.", context=knowledge)
    )
    assert good.label == "supported" and bad.label == "hallucinated"
    assert good.value is not None and bad.value is not None and good.value > bad.value
    assert "unsupported:mumbai" in bad.reason
    missing = await apply(scorer, Sample(input=question, output="Delhi"))
    assert missing.error == "row has no `context` (needed by hallucination)"


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting its calls and failing on request."""

    def __init__(self) -> None:
        super().__init__(256)
        self.calls: list[int] = []
        self.fail = False

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(len(texts))
        await asyncio.sleep(0.01)
        if self.fail:
            raise RuntimeError("model gone")
        return await super().embed(texts)


async def test_concurrent_rows_share_embedder_calls() -> None:
    embedder = CountingEmbedder()
    scorer = EmbeddingSimilarity(embedder)
    samples = [Sample(output=f"answer {i}", expected=f"answer {i}!") for i in range(20)]
    results = await asyncio.gather(*(apply(scorer, s) for s in samples))
    assert sum(embedder.calls) == 40 and len(embedder.calls) <= 3  # not 20 calls
    alone = HashingEmbedder(256)
    for sample, result in zip(samples, results, strict=True):
        v = await alone.embed([str(sample.output), str(sample.expected)])
        assert result.value == pytest.approx(float(np.clip(v[0] @ v[1], 0, 1)))
    embedder.fail = True
    failed = await apply(scorer, samples[0])
    assert failed.error is not None and "model gone" in failed.error
