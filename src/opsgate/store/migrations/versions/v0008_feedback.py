"""Feedback: scores, review queues, datasets (filled by issue 14).

Revision ID: v0008_feedback
Revises: v0007_latency
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "v0008_feedback"
down_revision: str | None = "v0007_latency"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
