"""The `audit_log` table, on the shared metadata; migration `v0005_compliance` creates it.

`detail` is stored as the exact canonical JSON text that was hashed (not JSON/JSONB), so what
the database hands back is byte for byte what the chain covers on both dialects.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, Index, String, Table, Text

from opsgate.store.tables.traces import metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # 1, 2, 3, ... no gaps
    Column("at", Double, nullable=False),  # epoch seconds, rounded to microseconds
    Column("actor", String, nullable=False),
    Column("action", String, nullable=False),
    Column("target", String, nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String, nullable=False),
    Column("hash", String, nullable=False),
    Index(None, "at"),
    Index(None, "action", "seq"),
)
