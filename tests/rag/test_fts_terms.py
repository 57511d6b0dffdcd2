"""Both stores' full-text match leaves out query terms found in most chunks when rarer ones
remain (BM25 weighs them little, `ts_rank_cd` not at all less; they made nearly every chunk a
match to score), keeps the rarest when all are common, and falls back to every term when the
rare ones find too few. SQLite counts with FTS5; PostgreSQL reads its own statistics."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from opsgate.config.rag import RagConfig
from opsgate.rag.ingest import Upload
from opsgate.rag.service import KnowledgeService
from opsgate.rag.store.pg_text import LexemeShares
from opsgate.rag.store.pgvector import PgVectorStore
from opsgate.rag.store.sqlite import SqliteStore
from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from tests.rag.conftest import ADMIN, TEAM_A, sqlite_service


async def test_common_terms_leave_the_match_when_rarer_ones_remain(tmp_path: Path) -> None:
    config = RagConfig(chunk_tokens=64, chunk_overlap=8)
    async for service in sqlite_service(tmp_path, config):
        store = service.store
        assert isinstance(store, SqliteStore)
        await service.create(TEAM_A, "kb")
        docs = [
            Upload(f"d{i:02d}.txt", f"common words and lexicon{i % 10} item{i}".encode())
            for i in range(30)
        ]
        await service.ingest(TEAM_A, "kb", docs)
        assert await store._uncommon(['"common"', '"item7"']) == ['"item7"']
        assert await store._uncommon(['"common"', '"lexicon1"']) == ['"lexicon1"']
        assert await store._uncommon(['"common"', '"words"']) == ['"common"']  # all common
        top = service.options(3, mode="bm25")
        _, found = await service.search(TEAM_A, "kb", "common item7", top)
        assert [h.path for h in found.hits][:1] == ["d07.txt"] and len(found.hits) == 3
        wider = service.options(20, mode="bm25")
        _, wide = await service.search(TEAM_A, "kb", "common item7", wider)
        assert wide.hits[0].path == "d07.txt" and len(wide.hits) == 20


async def test_postgres_leaves_out_lexemes_its_statistics_call_common(plain_pg_url: str) -> None:
    await upgrade(plain_pg_url)
    engine = make_engine(plain_pg_url)
    service = KnowledgeService(PgVectorStore(engine, vectors="auto"), RagConfig())
    try:
        await service.start()
        store = service.store
        assert isinstance(store, PgVectorStore)
        await service.create(ADMIN, "kb")
        docs = [
            Upload(f"d{i:02d}.txt", f"common words and lexicon{i % 30} item{i}".encode())
            for i in range(60)
        ]
        await service.ingest(ADMIN, "kb", docs)
        async with engine.connect() as conn:
            assert await store.lexemes.uncommon(conn, ["common", "item7"]) == ["common", "item7"]
            await conn.execute(text("ANALYZE rag_chunks"))  # statistics, as autovacuum keeps
            await conn.commit()
            store.lexemes = LexemeShares()
            assert await store.lexemes.uncommon(conn, ["common", "item7"]) == ["item7"]
            assert await store.lexemes.uncommon(conn, ["the", "lexicon3"]) == ["lexicon3"]
            assert await store.lexemes.uncommon(conn, ["common", "words"]) in (
                ["common"],
                ["words"],
            )
        _, found = await service.search(ADMIN, "kb", "common item7", service.options(3))
        assert found.hits[0].path == "d07.txt" and len(found.hits) == 3
    finally:
        await service.aclose()
        await dispose_engine(engine)
