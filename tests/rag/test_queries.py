"""The query-vector LRU: a repeated query is answered without the embedder, keyed by the
embedder's name, least recently used first out, batches never cached; and through a service."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opsgate.cache.embed.hashing import HashingEmbedder
from opsgate.config.rag import RagConfig
from opsgate.rag.ingest import Upload
from opsgate.rag.queries import QueryVectors
from tests.rag.conftest import TEAM_A, sqlite_service


async def test_repeated_queries_come_from_the_cache_in_lru_order() -> None:
    cache = QueryVectors(size=2)
    inner = HashingEmbedder(64)
    cached = cache.around(inner)
    first = await cached.embed(["red planet"])
    again = await cached.embed(["red planet"])
    assert (cache.hits, cache.misses) == (1, 1)
    assert np.array_equal(first, again) and again.shape == (1, 64)
    assert np.array_equal(again, inner.embed_now(["red planet"]))
    assert not again.flags.writeable  # shared between requests
    await cached.embed(["blue moon"])
    await cached.embed(["red planet"])  # now the most recent
    await cached.embed(["green sun"])  # evicts "blue moon"
    assert len(cache) == 2
    assert cache.get(inner.name, "blue moon") is None
    assert cache.get(inner.name, "red planet") is not None
    assert cache.get("another-embedder", "red planet") is None
    batch = await cached.embed(["one", "two"])
    assert batch.shape == (2, 64) and cache.get(inner.name, "one") is None


async def test_a_service_search_embeds_a_repeated_query_once(tmp_path: Path) -> None:
    config = RagConfig(chunk_tokens=64, chunk_overlap=8)
    async for service in sqlite_service(tmp_path, config):
        await service.create(TEAM_A, "kb")
        await service.ingest(TEAM_A, "kb", [Upload("mars.md", b"Mars is the red planet.")])
        for _ in range(3):
            _, found = await service.search(TEAM_A, "kb", "red planet", service.options(1))
            assert found.hits[0].path == "mars.md"
        assert (service.queries.hits, service.queries.misses) == (2, 1)
        service.reload(RagConfig(embedder={"type": "hashing", "dim": 128}))
        assert len(service.queries) == 0
