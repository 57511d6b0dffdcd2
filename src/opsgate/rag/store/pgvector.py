"""PostgreSQL with pgvector: the chunks' `embedding vector` column with one HNSW index per
knowledge base (a partial expression index with the base's dimension), and full text through
the stored `tsv` column and its GIN index (migration v0013_rag). The ACL, the filters and the
ranking are one statement; pgvector's iterative index scan (0.8+) keeps looking when the ACL or
a filter hides the nearest chunks, instead of returning fewer than asked.

Without pgvector (`rag.postgres_vectors`: `auto`, the default, or `local`) vectors are searched
in an in-process usearch index per replica, built from the chunks' stored vectors (`LocalVectors`,
as the embedded store does): documents, chunks and full text stay in PostgreSQL, shared by every
replica. Once the extension is installed, start-up adds the column, fills it from the stored
vectors and makes the missing HNSW indexes. `pgvector` refuses to run without it (503 with how to
install it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.cache.embed.base import Vectors
from opsgate.rag.model import ChunkRow, Filters, Hit, KnowledgeBase, Reader
from opsgate.rag.store.ann import EXACT_BELOW, decode_vectors
from opsgate.rag.store.base import StoreUnavailableError
from opsgate.rag.store.local_vectors import LocalVectors
from opsgate.rag.store.pg_text import LexemeShares, query_words
from opsgate.rag.store.search_sql import HIT_COLUMNS, HIT_FROM, access_sql, filter_sql, hit_of
from opsgate.rag.store.sql import SqlStore

TSVECTOR = "c.tsv"
"""The chunks' stored `tsvector` (a generated column with a GIN index, v0013_rag)."""
TAG_CLAUSE = "jsonb_exists(d.tags, :{name})"
EF_SEARCH = 100
BACKFILL_BATCH = 1000
VectorMode = Literal["auto", "pgvector", "local"]
INSTALL = (
    "install pgvector on the server (https://github.com/pgvector/pgvector#installation, e.g. "
    "apt install postgresql-<version>-pgvector) and let the gateway's user run CREATE EXTENSION "
    "vector, then restart the gateway"
)
log = logging.getLogger("opsgate.rag")
_KB_ID = re.compile(r"^kb_[0-9a-f]{16}$")


def vector_text(row: Vectors | Sequence[float]) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in row) + "]"


def _index_name(base: KnowledgeBase) -> str:
    if not _KB_ID.match(base.id):
        raise ValueError(f"unexpected knowledge base id {base.id!r}")
    return f"ix_rag_hnsw_{base.id[3:]}"


class PgVectorStore(SqlStore):
    kind = "pgvector"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        vectors: VectorMode = "pgvector",
        index_folder: Path | None = None,
        exact_below: int = EXACT_BELOW,
    ) -> None:
        super().__init__(engine)
        self.mode: VectorMode = vectors
        self.index_folder = index_folder
        self.exact_below = exact_below
        self.embedding_column = True
        """Whether `rag_chunks.embedding` exists (written on insert even when searched locally)."""
        self.local: LocalVectors | None = None
        """The in-process index, when vectors are not searched with pgvector."""
        self.fallback: str | None = None
        self.lexemes = LexemeShares()
        """Why vectors are searched in-process (None with pgvector)."""

    async def start(self) -> None:
        try:
            async with self.engine.begin() as conn:
                await _check_tables(conn)
                self.embedding_column = await _has_embedding(conn)
            missing = None if self.embedding_column else await self._enable_pgvector()
        except (DBAPIError, OSError) as exc:
            raise StoreUnavailableError(
                f"PostgreSQL cannot hold knowledge bases: {_reason(exc)}"
            ) from None
        if missing is None and self.mode != "local":
            self.local, self.fallback, self.kind = None, None, "pgvector"
            return
        if self.mode == "pgvector":
            raise StoreUnavailableError(
                f"{missing}: {INSTALL}; or set rag.postgres_vectors: auto to search vectors "
                "in-process"
            )
        self.fallback = missing or "rag.postgres_vectors is local"
        self.local = LocalVectors(
            self.engine, self.index_folder, TAG_CLAUSE, exact_below=self.exact_below
        )
        self.kind = "postgres+usearch"
        if self.mode == "auto":
            log.warning(
                "knowledge bases: %s; vectors are searched in an in-process index built from "
                "the chunks table (rag.postgres_vectors: auto). For pgvector: %s",
                missing,
                INSTALL,
            )

    async def _enable_pgvector(self) -> str | None:
        """Create the extension and the column the migration skipped, then fill it; the reason
        when the server cannot (None when done). Skipped under `local`."""
        if self.mode == "local":
            return "rag.postgres_vectors is local"
        async with self.engine.begin() as conn:
            offered = await conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            )
            if offered.first() is None:
                return "PostgreSQL has no pgvector extension (`vector`)"
        try:
            async with self.engine.begin() as conn:
                await conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
                await conn.execute(
                    text("ALTER TABLE rag_chunks ADD COLUMN IF NOT EXISTS embedding vector")
                )
                await _backfill(conn)
        except ProgrammingError as exc:
            return f"cannot enable pgvector ({_reason(exc)})"
        self.embedding_column = True
        return None

    async def aclose(self) -> None:
        if self.local is not None:
            await self.local.ann.save()

    async def flush(self) -> None:
        if self.local is not None:
            await self.local.ann.save()

    async def _replaced(self, base: KnowledgeBase, gone: Any, added: Any, rows: Any) -> None:
        if self.local is not None:
            self.local.ann.forget(base, list(gone))

    async def _base_created(self, conn: AsyncConnection, base: KnowledgeBase) -> None:
        if self.embedding_column:
            await conn.execute(text(_hnsw_sql(base)))

    async def _base_dropped(self, base: KnowledgeBase) -> None:
        if self.local is not None:
            self.local.ann.drop(base)
        if self.embedding_column:
            async with self.engine.begin() as conn:
                await conn.execute(text(f"DROP INDEX IF EXISTS {_index_name(base)}"))

    async def _insert_chunks(
        self, conn: AsyncConnection, base: KnowledgeBase, doc_id: str, chunks: Sequence[ChunkRow]
    ) -> list[int]:
        if not chunks or not self.embedding_column:
            return await super()._insert_chunks(conn, base, doc_id, chunks)
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
        words = query_words(query)
        if not words:
            return []
        params: dict[str, Any] = {"kb": base.id, "k": k}
        where = f"{access_sql(reader, params)} AND {filter_sql(filters, params, TAG_CLAUSE)}"
        sql = text(
            f"SELECT {HIT_COLUMNS}, ts_rank_cd({TSVECTOR}, q.q) AS rank "
            f"FROM {HIT_FROM}, to_tsquery('english', :q) AS q(q) "
            f"WHERE {TSVECTOR} @@ q.q AND c.kb_id = :kb AND {where} "
            "ORDER BY rank DESC, c.id LIMIT :k"
        )
        async with self.engine.connect() as conn:
            kept = await self.lexemes.uncommon(conn, words)
            rows = (await conn.execute(sql, {**params, "q": " | ".join(kept)})).mappings().all()
            if len(rows) < k and len(kept) < len(words):  # too few: the common words too
                full = {**params, "q": " | ".join(words)}
                rows = (await conn.execute(sql, full)).mappings().all()
        return [hit_of(r, float(r["rank"]), "bm25", i) for i, r in enumerate(rows, start=1)]

    async def vector_search(
        self, base: KnowledgeBase, vector: Vectors, k: int, reader: Reader, filters: Filters
    ) -> list[Hit]:
        if self.local is not None:
            return await self.local.search(base, vector, k, reader, filters)
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


async def _check_tables(conn: AsyncConnection) -> None:
    tables = await conn.execute(text("SELECT to_regclass('rag_chunks') IS NOT NULL"))
    if not tables.scalar():
        raise StoreUnavailableError("the knowledge-base tables are not migrated yet (v0013_rag)")


def _hnsw_sql(base: KnowledgeBase, *, if_missing: bool = False) -> str:
    exists = "IF NOT EXISTS " if if_missing else ""
    return (
        f"CREATE INDEX {exists}{_index_name(base)} ON rag_chunks USING hnsw "
        f"((embedding::vector({int(base.dim)})) vector_cosine_ops) WHERE kb_id = '{base.id}'"
    )


async def _backfill(conn: AsyncConnection) -> None:
    """Chunks stored while vectors were searched in-process get their `embedding` from the
    stored float32 bytes, and every base its HNSW index (once pgvector is installed)."""
    bases = (await conn.execute(text("SELECT id, dim FROM rag_knowledge_bases"))).all()
    dims = {str(kb_id): int(dim) for kb_id, dim in bases}
    after = 0
    while True:
        rows = (
            await conn.execute(
                text(
                    "SELECT id, kb_id, vector FROM rag_chunks WHERE embedding IS NULL "
                    "AND id > :after ORDER BY id LIMIT :n"
                ),
                {"after": after, "n": BACKFILL_BATCH},
            )
        ).all()
        if not rows:
            break
        values = [
            {"id": r[0], "e": vector_text(decode_vectors([bytes(r[2])], dims[r[1]])[0])}
            for r in rows
        ]
        await conn.execute(
            text("UPDATE rag_chunks SET embedding = CAST(:e AS vector) WHERE id = :id"), values
        )
        after = int(rows[-1][0])
    for kb_id, dim in dims.items():
        base = KnowledgeBase(id=kb_id, team_id="", name="", embedder="", dim=dim)
        await conn.execute(text(_hnsw_sql(base, if_missing=True)))


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0][:200]
