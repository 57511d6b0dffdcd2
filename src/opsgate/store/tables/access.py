"""Access tables (teams, users, keys, the change counter) on the store's one `MetaData`.

They sit on `opsgate.store.tables.traces.metadata` so the single Alembic chain (v0002_access)
and the schema-vs-migration check cover them with the traces. Ids are plain strings without foreign
keys, as in the traces table: a revoked key keeps naming the team it belonged to after that
team is gone, for history. Times are epoch seconds; policies are JSON (see access/records.py).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Double, Index, Integer, String, Table

from opsgate.store.tables.traces import json_type, metadata

teams = Table(
    "teams",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", String, nullable=False, unique=True),
    Column("metadata", json_type(), nullable=False),
    Column("limits", json_type(), nullable=False),
    Column("budget", json_type()),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", String),
    Column("email", String),
    Column("team_id", String),
    Column("metadata", json_type(), nullable=False),
    Column("created_at", Double, nullable=False),
    Index(None, "team_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String, primary_key=True),
    Column("key_hash", String, nullable=False, unique=True),
    Column("prefix", String, nullable=False),
    Column("alias", String),
    Column("role", String, nullable=False),
    Column("user_id", String),
    Column("team_id", String),
    Column("allowed_models", json_type(), nullable=False),
    Column("metadata", json_type(), nullable=False),
    Column("limits", json_type(), nullable=False),
    Column("budget", json_type()),
    Column("end_user_limits", json_type(), nullable=False),
    Column("end_user_budget", json_type()),
    Column("enabled", Boolean, nullable=False),
    Column("expires_at", Double),
    Column("revoked_at", Double),
    Column("rotated_from", String),
    Column("created_by", String),
    Column("created_at", Double, nullable=False),
    Index(None, "team_id"),
    Index(None, "user_id"),
)

access_version = Table(
    "access_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)
"""One row (id 1) bumped in the same transaction as every access change; replicas poll it."""
