"""The embedded store's vector indexes: one usearch HNSW index per knowledge base, saved beside
the SQLite file and kept in step with the chunks table.

The index is a candidate generator, never the truth: it maps chunk ids to vectors, and every
search joins its candidates back to `rag_chunks` under the reader's ACL, so an id whose chunk was
replaced (in this process or another) simply finds no row. Chunk ids only grow, so catching up
with another writer is "add the chunks above the highest id held"; ids that went are removed
when this process deletes them, and the index is rebuilt when too many stale ids pile up.
Small bases (under `EXACT_BELOW` chunks) are searched exactly and need no index.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.cache.embed.base import Vectors
from opsgate.cache.semantic.index import UsearchIndex
from opsgate.rag.model import KnowledgeBase

log = logging.getLogger("opsgate.rag")
EXACT_BELOW = 2048
"""Bases with fewer chunks are searched exactly (brute force over their vectors in SQL)."""
STALE_SHARE = 0.25
"""Rebuild an index once this share of its ids no longer has a chunk."""
EXPANSION_SEARCH = 128
"""HNSW's search beam; recall@10 vs exact was 0.99 at 100k chunks (docs/rag.md)."""
SYNC_BATCH = 5000


@dataclass
class _Entry:
    index: UsearchIndex
    max_id: int = 0
    generation: int = -1
    live: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def decode_vectors(blobs: list[bytes], dim: int) -> Vectors:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    joined = np.frombuffer(b"".join(blobs), dtype="<f4")
    return joined.reshape(len(blobs), dim).astype(np.float32, copy=False)


class AnnIndexes:
    def __init__(
        self, engine: AsyncEngine, folder: Path | None, *, exact_below: int = EXACT_BELOW
    ) -> None:
        self.engine = engine
        self.folder = folder
        self.exact_below = exact_below
        self._entries: dict[str, _Entry] = {}

    def _paths(self, kb_id: str) -> tuple[Path, Path] | None:
        if self.folder is None:
            return None
        return self.folder / f"{kb_id}.usearch", self.folder / f"{kb_id}.json"

    async def index_for(self, base: KnowledgeBase) -> UsearchIndex | None:
        """The base's index, caught up with the chunks table; None while the base is small."""
        entry = self._entries.get(base.id)
        if entry is None:
            entry = self._entries[base.id] = await asyncio.to_thread(self._load, base)
        if entry.generation != base.generation:
            async with entry.lock:
                if entry.generation != base.generation:
                    await self._catch_up(base, entry)
        if entry.live < self.exact_below:
            return None
        return entry.index

    def _load(self, base: KnowledgeBase) -> _Entry:
        entry = _Entry(_new_index(base.dim))
        paths = self._paths(base.id)
        if paths is not None and paths[0].exists() and paths[1].exists():
            try:
                state = json.loads(paths[1].read_text())
                entry.index.load(paths[0])
                entry.max_id, entry.live = int(state["max_id"]), int(state["live"])
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                log.warning("rebuilding the vector index of %s: %s", base.id, exc)
                entry = _Entry(_new_index(base.dim))
        return entry

    async def _catch_up(self, base: KnowledgeBase, entry: _Entry, *, rebuild: bool = True) -> None:
        async with self.engine.connect() as conn:
            live = (
                await conn.execute(
                    text("SELECT count(*) FROM rag_chunks WHERE kb_id = :kb"), {"kb": base.id}
                )
            ).scalar_one()
            while True:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT id, vector FROM rag_chunks WHERE kb_id = :kb AND id > :after "
                            "ORDER BY id LIMIT :n"
                        ),
                        {"kb": base.id, "after": entry.max_id, "n": SYNC_BATCH},
                    )
                ).all()
                if not rows:
                    break
                ids = np.asarray([r[0] for r in rows], dtype=np.uint64)
                vectors = decode_vectors([r[1] for r in rows], base.dim)
                await asyncio.to_thread(entry.index.add, ids, vectors)
                entry.max_id = int(ids[-1])
        entry.live = int(live)
        entry.generation = base.generation
        stale = len(entry.index) - entry.live
        if rebuild and len(entry.index) and stale > STALE_SHARE * len(entry.index):
            await self._rebuild(base, entry)

    async def _rebuild(self, base: KnowledgeBase, entry: _Entry) -> None:
        fresh = _Entry(_new_index(base.dim))
        await self._catch_up(base, fresh, rebuild=False)
        entry.index, entry.max_id, entry.live = fresh.index, fresh.max_id, fresh.live

    def forget(self, base: KnowledgeBase, ids: list[int]) -> None:
        """Chunk ids this process deleted: out of the index at once."""
        entry = self._entries.get(base.id)
        if entry is not None and ids:
            entry.index.remove(ids)

    def drop(self, base: KnowledgeBase) -> None:
        self._entries.pop(base.id, None)
        paths = self._paths(base.id)
        if paths is not None:
            for path in paths:
                path.unlink(missing_ok=True)

    async def save(self) -> None:
        """Write every index that changed since loading (at shutdown and after ingestion)."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for kb_id, entry in list(self._entries.items()):
            paths = self._paths(kb_id)
            assert paths is not None
            state = {"max_id": entry.max_id, "live": entry.live}
            async with entry.lock:
                await asyncio.to_thread(entry.index.save, paths[0])
                paths[1].write_text(json.dumps(state))


def _new_index(dim: int) -> UsearchIndex:
    return UsearchIndex(dim, "f16", connectivity=16, expansion_search=EXPANSION_SEARCH)
