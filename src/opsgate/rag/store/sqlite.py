"""The embedded store: SQLite tables, FTS5 (BM25) for full text, usearch HNSW for vectors.

usearch over sqlite-vec: sqlite-vec's `vec0` searches by brute force, which at 100k chunks of
384 dimensions costs more than the whole retrieval budget (docs/rag.md has the measurement);
usearch is already a dependency (the semantic cache) and keeps an HNSW index on disk.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.cache.embed.base import Vectors
from opsgate.cache.embed.hashing import STOP_WORDS
from opsgate.rag.model import Filters, Hit, KnowledgeBase, Reader
from opsgate.rag.store.ann import EXACT_BELOW
from opsgate.rag.store.base import StoreUnavailableError
from opsgate.rag.store.local_vectors import OVERSAMPLE, LocalVectors
from opsgate.rag.store.search_sql import HIT_COLUMNS, access_sql, filter_sql, hit_of
from opsgate.rag.store.sql import SqlStore

_WORD = re.compile(r"\w+", re.UNICODE)
TAG_CLAUSE = "EXISTS (SELECT 1 FROM json_each(d.tags) t WHERE t.value = :{name})"
MAX_QUERY_TERMS = 64


COMMON_SHARE = 0.2
"""A query term in more than this share of the chunks is left out of the full-text match when
rarer terms remain (its BM25 weight is small and it would make nearly every chunk a match to
score: 24 -> 10 ms at 20k chunks, recall@5 unchanged; docs/benchmarks.md)."""


def fts_terms(query: str) -> list[str]:
    """The query's words (stop words dropped unless nothing else is left), each quoted so FTS5
    syntax in a query is only text."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    kept = [w for w in words if w not in STOP_WORDS] or words
    return [f'"{w}"' for w in kept[:MAX_QUERY_TERMS]]


def fts_query(query: str) -> str:
    """Any of the query's words, as an FTS5 match."""
    return " OR ".join(fts_terms(query))


class SqliteStore(SqlStore):
    kind = "sqlite"

    def __init__(
        self, engine: AsyncEngine, index_folder: Path | None, *, exact_below: int = EXACT_BELOW
    ) -> None:
        super().__init__(engine)
        self.vectors = LocalVectors(engine, index_folder, TAG_CLAUSE, exact_below=exact_below)
        self.ann = self.vectors.ann

    async def start(self) -> None:
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(
                    text("SELECT 1 FROM sqlite_master WHERE name = 'rag_chunks_fts'")
                )
            ).first()
        if found is None:
            raise StoreUnavailableError(
                "the database has no knowledge-base tables yet (migration v0013_rag)"
            )

    async def aclose(self) -> None:
        await self.ann.save()

    async def flush(self) -> None:
        await self.ann.save()

    async def _replaced(self, base: KnowledgeBase, gone: Any, added: Any, rows: Any) -> None:
        self.ann.forget(base, list(gone))

    async def _base_dropped(self, base: KnowledgeBase) -> None:
        self.ann.drop(base)

    async def text_search(
        self, base: KnowledgeBase, query: str, k: int, reader: Reader, filters: Filters
    ) -> list[Hit]:
        """BM25 over the full-text index, ranked there first (only ids and scores are sorted),
        then joined to the chunks under the reader's ACL and the filters, in one statement; when
        the ACL, a filter or another base hid too many, the ranked window grows, and at last
        every match is joined."""
        terms = fts_terms(query)
        if not terms:
            return []
        kept = await self._uncommon(terms)
        hits = await self._ranked(base, " OR ".join(kept), k, reader, filters)
        if len(hits) < k and len(kept) < len(terms):  # too few: the common terms too
            hits = await self._ranked(base, " OR ".join(terms), k, reader, filters)
        return hits

    async def _uncommon(self, terms: list[str]) -> list[str]:
        """`terms` without those in more than `COMMON_SHARE` of the chunks (the rarest one is
        always kept). One statement of index-only counts: ~1 ms for eight terms at 20k chunks."""
        if len(terms) < 2:
            return terms
        params: dict[str, Any] = {f"t{i}": t for i, t in enumerate(terms)}
        counts = ", ".join(
            f"(SELECT count(*) FROM rag_chunks_fts WHERE rag_chunks_fts MATCH :t{i})"
            for i in range(len(terms))
        )
        sql = f"SELECT (SELECT count(*) FROM rag_chunks), {counts}"
        async with self.engine.connect() as conn:
            row = (await conn.execute(text(sql), params)).one()
        total, df = int(row[0]), [int(n) for n in row[1:]]
        kept = [t for t, n in zip(terms, df, strict=True) if n <= COMMON_SHARE * total]
        return kept or [terms[df.index(min(df))]]

    async def _ranked(
        self, base: KnowledgeBase, match: str, k: int, reader: Reader, filters: Filters
    ) -> list[Hit]:
        window = max(k * OVERSAMPLE, 64)
        for _ in range(3):
            rows, more = await self._bm25(base, match, k, reader, filters, window)
            if len(rows) >= k or not more:
                return rows
            window *= 8
        rows, _ = await self._bm25(base, match, k, reader, filters, None)
        return rows

    async def _bm25(
        self,
        base: KnowledgeBase,
        match: str,
        k: int,
        reader: Reader,
        filters: Filters,
        window: int | None,
    ) -> tuple[list[Hit], bool]:
        params: dict[str, Any] = {"q": match, "kb": base.id, "k": k}
        where = f"{access_sql(reader, params)} AND {filter_sql(filters, params, TAG_CLAUSE)}"
        limit = ""
        if window is not None:
            params["window"] = window
            limit = " LIMIT :window"
        sql = (
            f"SELECT {HIT_COLUMNS}, m.rank FROM ("
            "SELECT rowid AS id, bm25(rag_chunks_fts, 0.5, 1.0) AS rank "
            f"FROM rag_chunks_fts WHERE rag_chunks_fts MATCH :q ORDER BY rank{limit}"
            f") AS m {_FTS_JOIN} "
            f"WHERE c.kb_id = :kb AND {where} ORDER BY m.rank LIMIT :k"
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(sql), params)).mappings().all()
        more = False
        if window is not None and len(rows) < k:  # hidden by the ACL, a filter, another base?
            more = await self._matches_more(match, window)
        hits = [hit_of(r, -float(r["rank"]), "bm25", i) for i, r in enumerate(rows, start=1)]
        return hits, more

    async def _matches_more(self, match: str, window: int) -> bool:
        sql = "SELECT count(*) FROM rag_chunks_fts WHERE rag_chunks_fts MATCH :q"
        async with self.engine.connect() as conn:
            count = (await conn.execute(text(sql), {"q": match})).scalar_one()
        return int(count) > window

    async def vector_search(
        self, base: KnowledgeBase, vector: Vectors, k: int, reader: Reader, filters: Filters
    ) -> list[Hit]:
        return await self.vectors.search(base, vector, k, reader, filters)


_FTS_JOIN = (
    "CROSS JOIN rag_chunks c ON c.id = m.id "
    "JOIN rag_documents d ON d.id = c.document_id "
    "JOIN rag_knowledge_bases kb ON kb.id = c.kb_id"
)
