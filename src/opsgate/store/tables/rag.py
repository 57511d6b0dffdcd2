"""Knowledge bases' tables (rag/store/ reads and writes them), on the shared metadata;
migration `v0013_rag` creates them.

A knowledge base is unique per (team, name); `team_id` is '' for a base of no team (shared with
every caller). A document is unique per (base, path); re-ingesting it replaces its chunks in one
transaction and bumps `version`. `rag_document_acl` lists who may read a document (`team:<id>`,
`user:<id>`, `key:<id>`, `role:<role>`); a document with no entry is open to everyone who sees its
base. Chunk ids only grow (AUTOINCREMENT on SQLite, an identity on PostgreSQL), so an id an ANN
index still holds after its chunk was replaced can never name another chunk.

What the dialects add outside this metadata (in the migration, not compared by Alembic): on
SQLite the FTS5 table `rag_chunks_fts` over (heading_text, text) kept by triggers; on PostgreSQL
a generated `tsv tsvector` column with a GIN index, and with the `vector` extension an
`embedding vector` column whose HNSW indexes are made per knowledge base
(rag/store/pgvector.py).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from opsgate.store.tables.traces import json_type, metadata

CHUNK_ID = BigInteger().with_variant(Integer(), "sqlite")
"""INTEGER PRIMARY KEY on SQLite (the rowid, which FTS5 joins on), BIGINT elsewhere."""

rag_knowledge_bases = Table(
    "rag_knowledge_bases",
    metadata,
    Column("id", String, primary_key=True),
    Column("team_id", String, nullable=False),
    Column("name", String, nullable=False),
    Column("description", Text),
    Column("embedder", String, nullable=False),
    Column("dim", Integer, nullable=False),
    Column("settings", json_type(), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("created_by", String),
    UniqueConstraint("team_id", "name"),
)

rag_documents = Table(
    "rag_documents",
    metadata,
    Column("id", String, primary_key=True),
    Column(
        "kb_id",
        String,
        ForeignKey("rag_knowledge_bases.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("path", String, nullable=False),
    Column("title", Text),
    Column("format", String, nullable=False),
    Column("content_hash", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("chars", Integer, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("tags", json_type(), nullable=False),
    Column("meta", json_type(), nullable=False),
    Column("owner", String),
    Column("acl_open", Boolean, nullable=False),
    Column("end_user", String),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    UniqueConstraint("kb_id", "path"),
    Index(None, "end_user"),
)

rag_document_acl = Table(
    "rag_document_acl",
    metadata,
    Column(
        "document_id", String, ForeignKey("rag_documents.id", ondelete="CASCADE"), nullable=False
    ),
    Column("entry", String, nullable=False),
    PrimaryKeyConstraint("document_id", "entry"),
    Index(None, "entry", "document_id"),
)

rag_chunks = Table(
    "rag_chunks",
    metadata,
    Column("id", CHUNK_ID, primary_key=True, autoincrement=True),
    Column("kb_id", String, nullable=False),
    Column(
        "document_id", String, ForeignKey("rag_documents.id", ondelete="CASCADE"), nullable=False
    ),
    Column("seq", Integer, nullable=False),
    Column("char_start", Integer, nullable=False),
    Column("char_end", Integer, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("heading_text", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Index(None, "document_id", "seq"),
    Index(None, "kb_id", "id"),
    sqlite_autoincrement=True,
)
