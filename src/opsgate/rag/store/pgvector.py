"""PostgreSQL with pgvector: the chunks' `embedding vector` column with one HNSW index per
knowledge base (a partial expression index with the base's dimension), and full text through
the stored `tsv` column and its GIN index (migration v0013_rag). The ACL, the filters and the
ranking are one statement; pgvector's iterative index scan (0.8+) keeps looking when the ACL or
a filter hides the nearest chunks, instead of returning fewer than asked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection

from opsgate.cache.embed.base import Vectors
from opsgate.rag.model import ChunkRow, Filters, Hit, KnowledgeBase, Reader
from opsgate.rag.store.ann import decode_vectors
from opsgate.rag.store.base import StoreUnavailableError
from opsgate.rag.store.search_sql import HIT_COLUMNS, HIT_FROM, access_sql, filter_sql, hit_of
from opsgate.rag.store.sql import SqlStore

TSVECTOR = "c.tsv"
"""The chunks' stored `tsvector` (a generated column with a GIN index, v0013_rag)."""
TAG_CLAUSE = "jsonb_exists(d.tags, :{name})"
EF_SEARCH = 100
_WORD = re.compile(r"\w+", re.UNICODE)
_KB_ID = re.compile(r"^kb_[0-9a-f]{16}$")


def tsquery(query: str) -> str:
    """Any of the query's words, as `to_tsquery` text (words only: no operator survives)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    return " | ".join(words[:64])


def vector_text(row: Vectors | Sequence[float]) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in row) + "]"


def _index_name(base: KnowledgeBase) -> str:
    if not _KB_ID.match(base.id):
        raise ValueError(f"unexpected knowledge base id {base.id!r}")
    return f"ix_rag_hnsw_{base.id[3:]}"


class PgVectorStore(SqlStore):
    kind = "pgvector"

    async def start(self) -> None:
        try:
            async with self.engine.begin() as conn:
                if not await _has_embedding(conn):
                    await _add_embedding(conn)
        except (DBAPIError, OSError) as exc:
            raise StoreUnavailableError(
                f"PostgreSQL cannot hold knowledge bases: {_reason(exc)}"
            ) from None

    async def aclose(self) -> None:
        return None

    async def _base_created(self, conn: AsyncConnection, base: KnowledgeBase) -> None:
        await conn.execute(
            text(
                f"CREATE INDEX {_index_name(base)} ON rag_chunks USING hnsw "
                f"((embedding::vector({int(base.dim)})) vector_cosine_ops) "
                f"WHERE kb_id = '{base.id}'"
            )
        )

    async def _base_dropped(self, base: KnowledgeBase) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text(f"DROP INDEX IF EXISTS {_index_name(base)}"))

    async def _insert_chunks(
        self, conn: AsyncConnection, base: KnowledgeBase, doc_id: str, chunks: Sequence[ChunkRow]
    ) -> list[int]:
        if not chunks:
            return []
        vectors = decode_vectors([c.vector for c in chunks], base.dim)
        rows = [
            {
                "kb": base.id,
                "doc": doc_id,
                "seq": c.seq,
                "start": c.start,
                "end": c.end,
                "tokens": c.tokens,
                "heading": c.heading_text,
                "text": c.text,
                "vector": c.vector,
                "embedding": vector_text(v),
            }
            for c, v in zip(chunks, vectors, strict=True)
        ]
        await conn.execute(
            text(
                "INSERT INTO rag_chunks (kb_id, document_id, seq, char_start, char_end, tokens, "
                "heading_text, text, vector, embedding) VALUES (:kb, :doc, :seq, :start, :end, "
                ":tokens, :heading, :text, :vector, CAST(:embedding AS vector))"
            ),
            rows,
        )
        picked = text("SELECT id FROM rag_chunks WHERE document_id = :doc ORDER BY seq")
        return [int(r[0]) for r in await conn.execute(picked, {"doc": doc_id})]

    async def text_search(
        self, base: KnowledgeBase, query: str, k: int, reader: Reader, filters: Filters
    ) -> list[Hit]:
        words = tsquery(query)
        if not words:
            return []
        params: dict[str, Any] = {"q": words, "kb": base.id, "k": k}
        where = f"{access_sql(reader, params)} AND {filter_sql(filters, params, TAG_CLAUSE)}"
        sql = (
            f"SELECT {HIT_COLUMNS}, ts_rank_cd({TSVECTOR}, q.q) AS rank "
            f"FROM {HIT_FROM}, to_tsquery('english', :q) AS q(q) "
            f"WHERE {TSVECTOR} @@ q.q AND c.kb_id = :kb AND {where} "
            "ORDER BY rank DESC, c.id LIMIT :k"
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(sql), params)).mappings().all()
        return [hit_of(r, float(r["rank"]), "bm25", i) for i, r in enumerate(rows, start=1)]

    async def vector_search(
        self, base: KnowledgeBase, vector: Vectors, k: int, reader: Reader, filters: Filters
    ) -> list[Hit]:
        dim = int(base.dim)
        params: dict[str, Any] = {"q": vector_text(vector.reshape(-1)), "kb": base.id, "k": k}
        where = f"{access_sql(reader, params)} AND {filter_sql(filters, params, TAG_CLAUSE)}"
        distance = f"(c.embedding::vector({dim}) <=> CAST(:q AS vector({dim})))"
        sql = (
            f"SELECT {HIT_COLUMNS}, 1 - {distance} AS similarity FROM {HIT_FROM} "
            f"WHERE c.kb_id = :kb AND {where} ORDER BY {distance} LIMIT :k"
        )
        async with self.engine.begin() as conn:
            await conn.execute(text(f"SET LOCAL hnsw.ef_search = {EF_SEARCH}"))
            await conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            rows = (await conn.execute(text(sql), params)).mappings().all()
        ordered = sorted(rows, key=lambda r: -float(r["similarity"]))  # relaxed order: re-sort
        return [
            hit_of(r, float(r["similarity"]), "vector", i) for i, r in enumerate(ordered, start=1)
        ]


async def _has_embedding(conn: AsyncConnection) -> bool:
    found = await conn.execute(
        text(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'rag_chunks' AND column_name = 'embedding'"
        )
    )
    return found.first() is not None


async def _add_embedding(conn: AsyncConnection) -> None:
    """The column the migration skipped because the extension was missing then."""
    tables = await conn.execute(text("SELECT to_regclass('rag_chunks') IS NOT NULL"))
    if not tables.scalar():
        raise StoreUnavailableError("the knowledge-base tables are not migrated yet (v0013_rag)")
    offered = await conn.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    )
    if offered.first() is None:
        raise StoreUnavailableError(
            "PostgreSQL has no pgvector extension (`vector`): install pgvector on the server, "
            "or use the embedded SQLite store"
        )
    try:
        await conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        await conn.execute(text("ALTER TABLE rag_chunks ADD COLUMN IF NOT EXISTS embedding vector"))
    except ProgrammingError as exc:
        raise StoreUnavailableError(
            f"cannot enable pgvector ({_reason(exc)}): run CREATE EXTENSION vector as a superuser"
        ) from None


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0][:200]
