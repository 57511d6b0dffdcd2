"""Feedback: the `scores` table, one row per score from every source (store/tables/feedback.py).

Revision ID: v0008_feedback
Revises: v0007_latency
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v0008_feedback"
down_revision: str | None = "v0007_latency"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


_INDEXES: tuple[tuple[str, ...], ...] = (
    ("created_at",),
    ("trace_id",),
    ("session_id",),
    ("metric", "created_at"),
    ("team_id", "created_at"),
    ("key_id", "created_at"),
    ("model", "created_at"),
    ("end_user",),
)


def upgrade() -> None:
    op.create_table(
        "scores",
        sa.Column("score_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("metric", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("trace_id", sa.String(), nullable=True),
        sa.Column("session_id", sa.String(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("label", sa.String(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("correction", _json(), nullable=True),
        sa.Column("author", sa.String(), nullable=True),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("trace_started_at", sa.Double(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("deployment", sa.String(), nullable=True),
        sa.Column("key_id", sa.String(), nullable=True),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("end_user", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("score_id", name="pk_scores"),
    )
    for columns in _INDEXES:
        op.create_index(f"ix_scores_{'_'.join(columns)}", "scores", list(columns))


def downgrade() -> None:
    op.drop_table("scores")
