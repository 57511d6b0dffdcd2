"""Knowledge stores behind one Protocol (`KnowledgeStore`): SQLite with FTS5 and usearch, and
PostgreSQL with pgvector."""

from opsgate.rag.store.base import KnowledgeStore, PutOutcome, StoreUnavailableError, vector_bytes
from opsgate.rag.store.sqlite import SqliteStore

__all__ = ["KnowledgeStore", "PutOutcome", "SqliteStore", "StoreUnavailableError", "vector_bytes"]
