"""Recent query vectors, kept so a repeated question skips the embedder (the largest part of
what retrieval adds to a request with a model embedder: MiniLM takes 13-22 ms a query on two
busy cores, a cached vector microseconds; docs/benchmarks.md).

Keyed by the embedder's name and the exact query text, so a changed embedder never answers
from another model's vectors; least recently used entries leave first. Only single-text calls
(the query) are cached; ingestion's batches go straight through.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from opsgate.cache.embed.base import Embedder, Vectors

DEFAULT_SIZE = 2048
MAX_KEY_CHARS = 4000


class QueryVectors:
    """An LRU of query vectors shared by every search of one service."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._rows: OrderedDict[tuple[str, str], Vectors] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, embedder: str, query: str) -> Vectors | None:
        row = self._rows.get((embedder, query))
        if row is None:
            self.misses += 1
            return None
        self._rows.move_to_end((embedder, query))
        self.hits += 1
        return row

    def put(self, embedder: str, query: str, row: Vectors) -> None:
        if self.size <= 0 or len(query) > MAX_KEY_CHARS:
            return
        frozen = row.copy()
        frozen.flags.writeable = False  # shared between requests: nobody may change it
        self._rows[(embedder, query)] = frozen
        self._rows.move_to_end((embedder, query))
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

    def clear(self) -> None:
        self._rows.clear()

    def around(self, inner: Embedder) -> Embedder:
        """`inner`, answering single-text calls from (and into) this cache."""
        return CachedQueries(inner, self)


class CachedQueries:
    def __init__(self, inner: Embedder, cache: QueryVectors) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.dim = inner.dim
        self.default_threshold = inner.default_threshold

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if len(texts) != 1:
            return await self.inner.embed(texts)
        found = self.cache.get(self.name, texts[0])
        if found is not None:
            return found.reshape(1, -1)
        rows = await self.inner.embed(texts)
        self.cache.put(self.name, texts[0], rows[0])
        return rows

    async def aclose(self) -> None:
        return None
