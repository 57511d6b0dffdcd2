"""A dataset reference is embedded once while its texts stay the same (the evaluation after
reads the cached vectors); changed texts or another embedder are embedded afresh."""

from __future__ import annotations

import numpy as np

from opsgate.cache.embed import HashingEmbedder
from opsgate.drift.checks import ReferenceCache


async def test_the_same_texts_are_embedded_once() -> None:
    cache = ReferenceCache(size=2)
    small, big = HashingEmbedder(64), HashingEmbedder(128)
    texts = ["How do I learn Python?", "What causes migraines?"]
    first = await cache.embed(small, texts)
    assert await cache.embed(small, list(texts)) is first
    assert np.allclose(first, await small.embed(texts))
    changed = await cache.embed(small, [*texts, "Is coffee bad for the heart?"])
    assert changed is not first and changed.shape == (3, 64)
    other = await cache.embed(big, texts)
    assert other.shape == (2, 128)
    assert await cache.embed(small, texts) is not first  # the oldest of three went (size 2)
