"""The knowledge store interface: one Protocol, an embedded and a PostgreSQL backend.

Every read that returns chunk text takes a `Reader` and applies the base's team and the
documents' ACL inside its own SQL statement: a chunk a reader may not see never leaves the
database, whatever a retriever ranked. A document change (`put_document`) is one transaction:
a concurrent search sees the old chunks or the new ones, never a mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from opsgate.cache.embed.base import Vectors
from opsgate.errors import ServiceUnavailableError
from opsgate.rag.model import ChunkRow, DocumentInfo, Filters, Hit, KnowledgeBase, Reader

PutOutcome = Literal["added", "replaced", "unchanged"]


class StoreUnavailableError(ServiceUnavailableError):
    """The configured store cannot serve knowledge bases (PostgreSQL without pgvector)."""

    default_code = "knowledge_store_unavailable"


class KnowledgeStore(Protocol):
    kind: str
    """`sqlite` (FTS5 + usearch) or `pgvector`."""

    async def start(self) -> None:
        """Check the schema (and load indexes); raise StoreUnavailableError when it cannot."""
        ...

    async def aclose(self) -> None: ...

    async def create_base(self, base: KnowledgeBase) -> KnowledgeBase:
        """Store a new base; `ConflictError` (409) when its team has one of that name."""
        ...

    async def bases(
        self, reader: Reader, *, name: str | None = None, team_id: str | None = None
    ) -> list[KnowledgeBase]:
        """The bases `reader` sees (with document and chunk counts), optionally by name/team."""
        ...

    async def delete_base(self, base: KnowledgeBase) -> None: ...

    async def document_hash(self, base: KnowledgeBase, path: str) -> str | None: ...

    async def put_document(
        self, base: KnowledgeBase, doc: DocumentInfo, chunks: Sequence[ChunkRow]
    ) -> PutOutcome:
        """Add the document, or replace its chunks atomically when its hash changed."""
        ...

    async def delete_document(self, base: KnowledgeBase, path: str) -> bool: ...

    async def documents(
        self, base: KnowledgeBase, reader: Reader, *, limit: int, offset: int = 0
    ) -> list[DocumentInfo]: ...

    async def text_search(
        self, base: KnowledgeBase, query: str, k: int, reader: Reader, filters: Filters
    ) -> list[Hit]:
        """Full-text (BM25 on SQLite, ts_rank_cd on PostgreSQL), best first."""
        ...

    async def vector_search(
        self, base: KnowledgeBase, vector: Vectors, k: int, reader: Reader, filters: Filters
    ) -> list[Hit]:
        """Nearest chunks by cosine similarity, best first."""
        ...

    async def export_end_user(self, end_user: str) -> list[dict[str, Any]]: ...

    async def erase_end_user(self, end_user: str) -> dict[str, int]: ...


def vector_bytes(rows: Vectors) -> list[bytes]:
    """float32 rows as the bytes stored in `rag_chunks.vector`."""
    return [row.astype("<f4").tobytes() for row in rows]
