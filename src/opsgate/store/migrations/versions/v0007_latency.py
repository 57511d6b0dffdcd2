"""Latency sketch columns for the usage tables (filled by the percentiles work of issue 13).

Revision ID: v0007_latency
Revises: v0006_erasures
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "v0007_latency"
down_revision: str | None = "v0006_erasures"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
