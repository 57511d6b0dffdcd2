"""The `alert_events` table, on the same metadata as `opsgate.store.tables.traces` (one migration
history); migration `v0003_alerts` creates it."""

from __future__ import annotations

from sqlalchemy import Column, Double, Index, Integer, String, Table, Text

from opsgate.store.tables.traces import json_type, metadata

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", String, primary_key=True),
    Column("created_at", Double, nullable=False),  # epoch seconds
    Column("kind", String, nullable=False),
    Column("severity", String, nullable=False),
    Column("message", Text, nullable=False),
    Column("labels", json_type(), nullable=False),
    Column("data", json_type(), nullable=False),
    Column("status", String, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Index(None, "created_at"),
    Index(None, "kind", "created_at"),
)
