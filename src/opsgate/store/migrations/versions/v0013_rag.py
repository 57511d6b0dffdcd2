"""Knowledge bases: documents, chunks, full-text and vector indexes (issue 18).

The tables are the same on every database (store/tables/rag.py). What each dialect adds:
SQLite gets the FTS5 table `rag_chunks_fts` over the chunks (external content, kept by
triggers); PostgreSQL gets a stored `tsv tsvector` column with a GIN index and, only where the
`vector`
extension can be created, an `embedding vector` column (HNSW indexes are made per knowledge
base, with its dimension, by rag/store/pgvector.py). A PostgreSQL without pgvector migrates
cleanly and keeps knowledge bases off (a clear 503) until the extension is installed; the
store adds the column then, at start-up.

Revision ID: v0013_rag
Revises: v0012_experiments
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v0013_rag"
down_revision: str | None = "v0012_experiments"
branch_labels: str | None = None
depends_on: str | None = None

FTS_SQLITE = [
    "CREATE VIRTUAL TABLE rag_chunks_fts USING fts5(heading_text, text, content='rag_chunks', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER rag_chunks_fts_insert AFTER INSERT ON rag_chunks BEGIN "
    "INSERT INTO rag_chunks_fts(rowid, heading_text, text) "
    "VALUES (new.id, new.heading_text, new.text); END",
    "CREATE TRIGGER rag_chunks_fts_delete AFTER DELETE ON rag_chunks BEGIN "
    "INSERT INTO rag_chunks_fts(rag_chunks_fts, rowid, heading_text, text) "
    "VALUES ('delete', old.id, old.heading_text, old.text); END",
]
TSVECTOR = "to_tsvector('english', heading_text || ' ' || text)"
"""The chunks' full-text document on PostgreSQL, stored (`tsv`): ranking reads it instead of
parsing every matching chunk again."""


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rag_knowledge_bases",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("embedder", sa.String(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rag_knowledge_bases"),
        sa.UniqueConstraint("team_id", "name", name="uq_rag_knowledge_bases_team_id_name"),
    )
    op.create_table(
        "rag_documents",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kb_id", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("format", sa.String(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("tags", _json(), nullable=False),
        sa.Column("meta", _json(), nullable=False),
        sa.Column("owner", sa.String(), nullable=True),
        sa.Column("acl_open", sa.Boolean(), nullable=False),
        sa.Column("end_user", sa.String(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["kb_id"],
            ["rag_knowledge_bases.id"],
            name="fk_rag_documents_kb_id_rag_knowledge_bases",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rag_documents"),
        sa.UniqueConstraint("kb_id", "path", name="uq_rag_documents_kb_id_path"),
    )
    op.create_index("ix_rag_documents_end_user", "rag_documents", ["end_user"])
    op.create_table(
        "rag_document_acl",
        sa.Column("document_id", sa.String(), nullable=False),
        sa.Column("entry", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["rag_documents.id"],
            name="fk_rag_document_acl_document_id_rag_documents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", "entry", name="pk_rag_document_acl"),
    )
    op.create_index(
        "ix_rag_document_acl_entry_document_id", "rag_document_acl", ["entry", "document_id"]
    )
    _chunks()
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in FTS_SQLITE:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE rag_chunks ADD COLUMN tsv tsvector "
            f"GENERATED ALWAYS AS ({TSVECTOR}) STORED"
        )
        op.execute("CREATE INDEX ix_rag_chunks_tsv ON rag_chunks USING gin (tsv)")
        if _has_pgvector(bind):
            op.execute("CREATE EXTENSION IF NOT EXISTS vector")
            op.execute("ALTER TABLE rag_chunks ADD COLUMN embedding vector")


def _chunks() -> None:
    op.create_table(
        "rag_chunks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kb_id", sa.String(), nullable=False),
        sa.Column("document_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("heading_text", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["rag_documents.id"],
            name="fk_rag_chunks_document_id_rag_documents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rag_chunks"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_rag_chunks_document_id_seq", "rag_chunks", ["document_id", "seq"])
    op.create_index("ix_rag_chunks_kb_id_id", "rag_chunks", ["kb_id", "id"])


def _has_pgvector(bind: sa.engine.Connection) -> bool:
    """Whether the server offers the `vector` extension (installed or installable)."""
    found = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    ).first()
    return found is not None


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS rag_chunks_fts_delete")
        op.execute("DROP TRIGGER IF EXISTS rag_chunks_fts_insert")
        op.execute("DROP TABLE IF EXISTS rag_chunks_fts")
    op.drop_table("rag_chunks")
    op.drop_table("rag_document_acl")
    op.drop_index("ix_rag_documents_end_user", table_name="rag_documents")
    op.drop_table("rag_documents")
    op.drop_table("rag_knowledge_bases")
