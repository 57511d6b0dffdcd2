"""The `scores` table: one row per score, from every source (feedback/scores.py describes the
row), on the shared metadata; migration `v0008_feedback` creates it.

No foreign key to `traces`: a score may be written before its trace leaves the writer's queue,
and it outlives a trace deleted by retention only until its own retention runs. The trace's
owners and route (team, key, user, end user, model, deployment) are copied onto the row when the
score is accepted, so scope checks, erasure and rollups read this table alone.
"""

from __future__ import annotations

from sqlalchemy import Column, Double, Index, String, Table, Text

from opsgate.store.tables.traces import json_type, metadata

scores = Table(
    "scores",
    metadata,
    Column("score_id", String, primary_key=True),
    Column("created_at", Double, nullable=False),  # epoch seconds
    Column("metric", String, nullable=False),
    Column("type", String, nullable=False),  # the metric's type when the score was taken
    Column("source", String, nullable=False),
    Column("trace_id", String),
    Column("session_id", String),
    Column("value", Double),  # float scores; boolean as 1.0 / 0.0
    Column("label", String),  # category scores
    Column("comment", Text),
    Column("correction", json_type()),  # the better answer, as an assistant message
    Column("author", String),  # the key id that sent it (None: a feedback token)
    Column("idempotency_key", String),
    Column("metadata", json_type(), nullable=False),
    # Copied from the trace (or the session's latest trace) when the score was accepted.
    Column("trace_started_at", Double),
    Column("model", String),
    Column("deployment", String),
    Column("key_id", String),
    Column("team_id", String),
    Column("user_id", String),
    Column("end_user", String),
    Index(None, "created_at"),
    Index(None, "trace_id"),
    Index(None, "session_id"),
    Index(None, "metric", "created_at"),
    Index(None, "team_id", "created_at"),
    Index(None, "key_id", "created_at"),
    Index(None, "model", "created_at"),
    Index(None, "end_user"),
)
