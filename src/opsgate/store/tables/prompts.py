"""The prompt registry's tables (prompts/sql.py reads and writes them), on the shared metadata;
migration `v0009_prompts` creates them.

A prompt is unique per (team, name); `team_id` is '' for prompts of no team, so the pair stays
unique. Versions are immutable rows; a label is one row pointing at a version, and every move
appends to `prompt_label_history` in the same transaction. `prompt_changes` is one counter row
bumped by every change, which replicas poll to drop the versions they resolved (as
`access_version` does for keys).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from opsgate.store.tables.traces import json_type, metadata

prompts = Table(
    "prompts",
    metadata,
    Column("id", String, primary_key=True),
    Column("team_id", String, nullable=False),
    Column("name", String, nullable=False),
    Column("latest_version", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("created_by", String),
    UniqueConstraint("team_id", "name"),
)

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("prompt_id", String, ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content", json_type(), nullable=False),  # the PromptSpec as JSON
    Column("content_hash", String, nullable=False),
    Column("message", Text),
    Column("author", String),
    Column("created_at", Double, nullable=False),
    PrimaryKeyConstraint("prompt_id", "version"),
)

prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column("prompt_id", String, ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False),
    Column("label", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("updated_by", String),
    PrimaryKeyConstraint("prompt_id", "label"),
)

prompt_label_history = Table(
    "prompt_label_history",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("prompt_id", String, ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False),
    Column("label", String, nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer, nullable=False),
    Column("at", Double, nullable=False),
    Column("actor", String),
    Index(None, "prompt_id", "label", "seq"),
)

prompt_changes = Table(
    "prompt_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)
"""One row (id 1) bumped in the same transaction as every registry change; replicas poll it."""
