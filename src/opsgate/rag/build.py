"""The knowledge store for a database URL, and knowledge bases as personal data.

SQLite (the embedded default) gets `SqliteStore` with its vector indexes beside the database
file (`<file>.rag/`, or `rag.index_path`); PostgreSQL gets `PgVectorStore`, which searches
vectors with pgvector where the server has it and, by default, in an in-process usearch index
where it has not (`rag.postgres_vectors`; the index in memory, or in `rag.index_path`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.config.rag import RagConfig
from opsgate.rag.store.base import KnowledgeStore
from opsgate.rag.store.pgvector import PgVectorStore
from opsgate.rag.store.sqlite import SqliteStore
from opsgate.store.db import is_sqlite_file


def index_folder(database_url: str, config: RagConfig) -> Path | None:
    if config.index_path:
        return Path(config.index_path)
    if is_sqlite_file(database_url):
        database = make_url(database_url).database
        assert database is not None
        return Path(database + ".rag")
    return None


def build_store(database_url: str, engine: AsyncEngine, config: RagConfig) -> KnowledgeStore:
    if make_url(database_url).get_backend_name() == "sqlite":
        return SqliteStore(engine, index_folder(database_url, config))
    return PgVectorStore(
        engine, vectors=config.postgres_vectors, index_folder=index_folder(database_url, config)
    )


class KnowledgeData:
    """Documents ingested on behalf of an end user (`end_user` at ingestion), as the GDPR
    registry asks for them (`PersonalData`)."""

    name = "knowledge_bases"

    def __init__(self, store: KnowledgeStore) -> None:
        self.store = store

    async def export(self, end_user: str) -> Any:
        return await self.store.export_end_user(end_user)

    async def erase(self, end_user: str) -> dict[str, int]:
        return await self.store.erase_end_user(end_user)
