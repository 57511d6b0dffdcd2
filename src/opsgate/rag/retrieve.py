"""Hybrid retrieval: BM25 and vector search, fused by weighted reciprocal rank fusion, with an
optional maximal-marginal-relevance pass and a pluggable re-ranker.

Each retriever hands `candidates` hits to fusion; a chunk's fused score is the sum over the
retrievers that found it of `weight / (rrf_k + rank)`. Fusion by rank, not by score, because
BM25 and cosine scores live on unrelated scales (docs/rag.md compares the choices).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np

from opsgate.cache.embed.base import Embedder, Vectors
from opsgate.config.rag import FusionConfig
from opsgate.rag.model import Filters, Hit, KnowledgeBase, Reader, Retriever
from opsgate.rag.store.ann import decode_vectors
from opsgate.rag.store.base import KnowledgeStore

Mode = Literal["hybrid", "bm25", "vector"]


class Reranker(Protocol):
    """Re-orders the fused hits for a query (a cross-encoder, a judge, a rule)."""

    name: str

    async def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """The hits, best first, with `score` set to the re-ranker's own score."""
        ...


@dataclass(frozen=True, slots=True)
class SearchOptions:
    top_k: int = 5
    mode: Mode = "hybrid"
    filters: Filters = field(default_factory=Filters)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    mmr: bool = False
    mmr_lambda: float = 0.7
    reranker: Reranker | None = None


@dataclass(frozen=True, slots=True)
class Retrieval:
    query: str
    hits: list[Hit]
    timings_ms: dict[str, float]
    """embed, bm25, vector, fuse (and rerank): where the time went."""


def fuse(lists: Sequence[tuple[Retriever, float, Sequence[Hit]]], rrf_k: int) -> list[Hit]:
    """Weighted reciprocal rank fusion of ranked lists (retriever, weight, hits)."""
    scores: dict[int, float] = {}
    merged: dict[int, Hit] = {}
    for retriever, weight, hits in lists:
        for rank, hit in enumerate(hits, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (rrf_k + rank)
            seen = merged.get(hit.chunk_id)
            if seen is None:
                merged[hit.chunk_id] = replace(hit, ranks={retriever: rank})
            else:
                merged[hit.chunk_id] = replace(
                    seen,
                    retrievers=(*seen.retrievers, retriever),
                    ranks={**seen.ranks, retriever: rank},
                    vector=seen.vector or hit.vector,
                )
    order = sorted(merged, key=lambda cid: (-scores[cid], cid))
    return [replace(merged[cid], score=scores[cid]) for cid in order]


def mmr(query: Vectors, hits: Sequence[Hit], k: int, lam: float, dim: int) -> list[Hit]:
    """Maximal marginal relevance: each pick trades relevance to the query against
    similarity to the hits already picked (`lam` 1 = relevance only)."""
    usable = [h for h in hits if h.vector]
    if len(usable) <= 1:
        return list(hits[:k])
    matrix = decode_vectors([h.vector for h in usable if h.vector], dim)
    relevance = matrix @ query.reshape(-1)
    picked: list[int] = []
    left = list(range(len(usable)))
    while left and len(picked) < k:
        if picked:
            overlap = (matrix[left] @ matrix[picked].T).max(axis=1)
        else:
            overlap = np.zeros(len(left), dtype=np.float32)
        gains = lam * relevance[left] - (1 - lam) * overlap
        best = left[int(np.argmax(gains))]
        picked.append(best)
        left.remove(best)
    return [usable[i] for i in picked]


async def retrieve(
    store: KnowledgeStore,
    embedder: Embedder,
    base: KnowledgeBase,
    query: str,
    reader: Reader,
    options: SearchOptions,
) -> Retrieval:
    """Search `base` for `query` as `reader` sees it."""
    timings: dict[str, float] = {}
    fusion = options.fusion
    wanted = max(fusion.candidates, options.top_k)
    vector: Vectors | None = None
    lists: list[tuple[Retriever, float, Sequence[Hit]]] = []

    async def text() -> list[Hit]:
        t0 = time.perf_counter()
        hits = await store.text_search(base, query, wanted, reader, options.filters)
        timings["bm25"] = (time.perf_counter() - t0) * 1000
        return hits

    async def dense() -> list[Hit]:
        nonlocal vector
        t0 = time.perf_counter()
        vector = (await embedder.embed([query]))[0]
        t1 = time.perf_counter()
        timings["embed"] = (t1 - t0) * 1000
        hits = await store.vector_search(base, vector, wanted, reader, options.filters)
        timings["vector"] = (time.perf_counter() - t1) * 1000
        return hits

    if options.mode == "bm25":
        lists.append(("bm25", 1.0, await text()))
    elif options.mode == "vector":
        lists.append(("vector", 1.0, await dense()))
    else:
        found_text, found_dense = await asyncio.gather(text(), dense())
        lists.append(("bm25", fusion.bm25_weight, found_text))
        lists.append(("vector", fusion.vector_weight, found_dense))
    t0 = time.perf_counter()
    hits = list(lists[0][2]) if len(lists) == 1 else fuse(lists, fusion.rrf_k)
    if options.mmr:
        if vector is None:
            vector = (await embedder.embed([query]))[0]
        hits = mmr(vector, hits, options.top_k, options.mmr_lambda, base.dim)
    timings["fuse"] = (time.perf_counter() - t0) * 1000
    if options.reranker is not None:
        t0 = time.perf_counter()
        hits = await options.reranker.rerank(query, hits)
        timings["rerank"] = (time.perf_counter() - t0) * 1000
    return Retrieval(query, [replace(h, vector=None) for h in hits[: options.top_k]], timings)


class EmbeddingReranker:
    """Re-scores hits by the cosine of a (usually stronger) embedder between the query and
    each chunk: the simplest re-ranker, and the shape a cross-encoder would plug into."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.name = f"embedding:{embedder.name}"

    async def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        if not hits:
            return []
        rows = await self.embedder.embed([query, *(h.text for h in hits)])
        scores = rows[1:] @ rows[0]
        order = np.argsort(-scores)
        return [replace(hits[i], score=float(scores[i])) for i in order.tolist()]
