"""Vector search through in-process usearch indexes (`AnnIndexes`), for any SQL database.

The embedded store always searches vectors this way; the PostgreSQL store does when the server
has no pgvector (docs/rag.md, "Stores"). The index only proposes chunk ids: each search joins
them back to `rag_chunks` under the reader's ACL and the filters in one statement, so the SQL
stays the truth. Small bases are searched exactly over their stored vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.cache.embed.base import Vectors
from opsgate.rag.model import Filters, Hit, KnowledgeBase, Reader
from opsgate.rag.store.ann import EXACT_BELOW, AnnIndexes, decode_vectors
from opsgate.rag.store.search_sql import HIT_COLUMNS, HIT_FROM, access_sql, filter_sql, hit_of

OVERSAMPLE = 4


class LocalVectors:
    def __init__(
        self,
        engine: AsyncEngine,
        index_folder: Path | None,
        tag_clause: str,
        *,
        exact_below: int = EXACT_BELOW,
    ) -> None:
        self.engine = engine
        self.tag_clause = tag_clause
        self.ann = AnnIndexes(engine, index_folder, exact_below=exact_below)

    async def search(
        self, base: KnowledgeBase, vector: Vectors, k: int, reader: Reader, filters: Filters
    ) -> list[Hit]:
        index = await self.ann.index_for(base)
        if index is None:
            return await self._exact(base, vector, k, reader, filters)
        want = max(k * OVERSAMPLE, 32)
        for _ in range(3):
            found = index.search(vector, want)
            if not found:
                return []
            hits = await self._visible(base, dict(found), reader, filters)
            if len(hits) >= k or len(found) < want:
                return hits[:k]
            want *= 8  # the ACL or a filter hid most candidates: look further
        return await self._exact(base, vector, k, reader, filters)

    def _where(self, reader: Reader, filters: Filters, params: dict[str, Any]) -> str:
        return f"{access_sql(reader, params)} AND {filter_sql(filters, params, self.tag_clause)}"

    async def _visible(
        self, base: KnowledgeBase, found: dict[int, float], reader: Reader, filters: Filters
    ) -> list[Hit]:
        params: dict[str, Any] = {"kb": base.id, "ids": list(found)}
        where = self._where(reader, filters, params)
        sql = text(
            f"SELECT {HIT_COLUMNS} FROM {HIT_FROM} WHERE c.id IN :ids AND c.kb_id = :kb AND {where}"
        ).bindparams(bindparam("ids", expanding=True))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sql, params)).mappings().all()
        rows = sorted(rows, key=lambda r: -found[int(r["chunk_id"])])
        return [
            hit_of(r, found[int(r["chunk_id"])], "vector", i) for i, r in enumerate(rows, start=1)
        ]

    async def _exact(
        self, base: KnowledgeBase, vector: Vectors, k: int, reader: Reader, filters: Filters
    ) -> list[Hit]:
        params: dict[str, Any] = {"kb": base.id}
        where = self._where(reader, filters, params)
        sql = f"SELECT {HIT_COLUMNS} FROM {HIT_FROM} WHERE c.kb_id = :kb AND {where}"
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(sql), params)).mappings().all()
        if not rows:
            return []
        matrix = decode_vectors([bytes(r["vector"]) for r in rows], base.dim)
        scores = matrix @ vector.reshape(-1).astype(np.float32)
        top = np.argsort(-scores)[:k]
        return [
            hit_of(rows[i], float(scores[i]), "vector", rank)
            for rank, i in enumerate(top.tolist(), start=1)
        ]
