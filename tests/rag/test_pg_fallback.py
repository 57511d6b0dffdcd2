"""PostgreSQL without pgvector: by default (`rag.postgres_vectors: auto`) knowledge bases work,
vectors searched in an in-process usearch index built from the chunks table (the machine's own
PostgreSQL, which has no pgvector, in a database of each test's own); `pgvector` refuses with a
503 that says how to install it; and once the extension exists, start-up fills the `embedding`
column from the stored vectors and makes the HNSW indexes (the private pgvector server)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from opsgate.config.rag import RagConfig
from opsgate.errors import OpsgateError
from opsgate.rag.build import build_store
from opsgate.rag.ingest import Upload
from opsgate.rag.service import KnowledgeService
from opsgate.rag.store.pgvector import PgVectorStore
from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from tests.rag.conftest import ADMIN, MEMBER_A

CONFIG = RagConfig(chunk_tokens=64, chunk_overlap=8)


def _docs(n: int, prefix: str, acl: tuple[str, ...] = ()) -> list[Upload]:
    return [
        Upload(
            f"{prefix}{i:04d}.txt", f"note {i} about topic{i % 17} and item{i}".encode(), acl=acl
        )
        for i in range(n)
    ]


async def test_without_pgvector_vectors_are_searched_in_process(plain_pg_url: str) -> None:
    await upgrade(plain_pg_url)
    engine = make_engine(plain_pg_url)
    built = build_store(plain_pg_url, engine, CONFIG)
    assert isinstance(built, PgVectorStore) and built.mode == "auto"  # the default
    # exact_below=50: the HNSW path, not the exact scan kept for small bases
    store = PgVectorStore(engine, vectors="auto", exact_below=50)
    service = KnowledgeService(store, CONFIG)
    try:
        await service.start()
        assert service.unavailable is None
        assert store.fallback is not None and "no pgvector" in store.fallback
        assert store.kind == "postgres+usearch" and store.local is not None
        await service.create(ADMIN, "kb")
        await service.ingest(ADMIN, "kb", _docs(120, "open/"))
        await service.ingest(ADMIN, "kb", _docs(200, "secret/", acl=("team:team-b",)))
        options = service.options(5, mode="vector")
        _, found = await service.search(ADMIN, "kb", "note 7 about topic7 and item7", options)
        assert found.hits[0].path == "open/0007.txt"
        assert await store.local.ann.index_for(await service.find(ADMIN, "kb")) is not None
        _, seen = await service.search(MEMBER_A, "kb", "item150 topic14", options)
        assert len(seen.hits) == 5 and all(h.path.startswith("open/") for h in seen.hits)
        _, hybrid = await service.search(MEMBER_A, "kb", "note 9 item9", service.options(3))
        assert hybrid.hits[0].path == "open/0009.txt"
        assert set(hybrid.hits[0].retrievers) == {"bm25", "vector"}
    finally:
        await service.aclose()
        await dispose_engine(engine)


async def test_requiring_pgvector_answers_503_with_how_to_install(plain_pg_url: str) -> None:
    await upgrade(plain_pg_url)
    engine = make_engine(plain_pg_url)
    config = RagConfig(postgres_vectors="pgvector")
    service = KnowledgeService(build_store(plain_pg_url, engine, config), config)
    try:
        await service.start()
        assert service.unavailable is not None
        assert "no pgvector" in service.unavailable and "CREATE EXTENSION" in service.unavailable
        with pytest.raises(OpsgateError) as exc:
            await service.bases(ADMIN)
        assert exc.value.status == 503
        assert exc.value.code == "knowledge_store_unavailable"
    finally:
        await service.aclose()
        await dispose_engine(engine)


async def test_installing_pgvector_later_fills_the_column_and_indexes(pgvector_url: str) -> None:
    await upgrade(pgvector_url)
    engine = make_engine(pgvector_url)
    try:
        async with engine.begin() as conn:  # as if the migration ran before pgvector existed
            await conn.execute(text("ALTER TABLE rag_chunks DROP COLUMN embedding"))
        before = KnowledgeService(PgVectorStore(engine, vectors="local"), CONFIG)
        await before.start()
        assert isinstance(before.store, PgVectorStore)
        assert before.store.local is not None and not before.store.embedding_column
        await before.create(ADMIN, "kb")
        await before.ingest(ADMIN, "kb", _docs(30, "n/"))
        await before.aclose()

        after = KnowledgeService(PgVectorStore(engine, vectors="pgvector"), CONFIG)
        await after.start()
        assert after.unavailable is None and isinstance(after.store, PgVectorStore)
        assert after.store.local is None and after.store.kind == "pgvector"
        async with engine.connect() as conn:
            empty = await conn.execute(
                text("SELECT count(*) FROM rag_chunks WHERE embedding IS NULL")
            )
            assert empty.scalar_one() == 0
            indexes = await conn.execute(
                text("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'ix_rag_hnsw_%'")
            )
            assert indexes.scalar_one() == 1
        options = after.options(3, mode="vector")
        _, found = await after.search(ADMIN, "kb", "note 12 about topic12 and item12", options)
        assert found.hits[0].path == "n/0012.txt"
        await after.aclose()
    finally:
        await dispose_engine(engine)
