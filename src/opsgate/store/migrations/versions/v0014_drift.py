"""Drift monitors, results, proposals, sampled embeddings (issue 19): `drift_samples`,
`drift_monitors`, `drift_results`, `drift_proposals` (store/tables/drift.py).

Revision ID: v0014_drift
Revises: v0013_rag
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v0014_drift"
down_revision: str | None = "v0013_rag"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "drift_samples",
        sa.Column("trace_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("prompt_name", sa.String(), nullable=True),
        sa.Column("key_id", sa.String(), nullable=True),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("end_user", sa.String(), nullable=True),
        sa.Column("prompt_chars", sa.Integer(), nullable=True),
        sa.Column("answer_chars", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(), nullable=True),
        sa.Column("refusal", sa.Boolean(), nullable=True),
        sa.Column("finish_reason", sa.String(), nullable=True),
        sa.Column("tool_calls", sa.Boolean(), nullable=False),
        sa.Column("json_valid", sa.Boolean(), nullable=True),
        sa.Column("embedder", sa.String(), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("trace_id", name="pk_drift_samples"),
    )
    op.create_index("ix_drift_samples_created_at", "drift_samples", ["created_at"])
    op.create_index("ix_drift_samples_model_created_at", "drift_samples", ["model", "created_at"])
    op.create_index("ix_drift_samples_end_user", "drift_samples", ["end_user"])
    op.create_table(
        "drift_monitors",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("spec", _json(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("created_by", sa.String(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_drift_monitors"),
    )
    op.create_table(
        "drift_results",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("monitor", sa.String(), nullable=False),
        sa.Column("evaluated_at", sa.Double(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("statistic", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("p_value", sa.Double(), nullable=True),
        sa.Column("effect", sa.Double(), nullable=True),
        sa.Column("n_ref", sa.Integer(), nullable=False),
        sa.Column("n_cur", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_results"),
    )
    op.create_index(
        "ix_drift_results_monitor_evaluated_at", "drift_results", ["monitor", "evaluated_at"]
    )
    op.create_table(
        "drift_proposals",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("monitor", sa.String(), nullable=False),
        sa.Column("result_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("decided_at", sa.Double(), nullable=True),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("detail", _json(), nullable=False),
        sa.Column("outcome", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_drift_proposals"),
    )
    op.create_index(
        "ix_drift_proposals_status_created_at", "drift_proposals", ["status", "created_at"]
    )
    op.create_index(
        "ix_drift_proposals_monitor_created_at", "drift_proposals", ["monitor", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("drift_proposals")
    op.drop_table("drift_results")
    op.drop_table("drift_monitors")
    op.drop_index("ix_drift_samples_end_user", table_name="drift_samples")
    op.drop_index("ix_drift_samples_model_created_at", table_name="drift_samples")
    op.drop_index("ix_drift_samples_created_at", table_name="drift_samples")
    op.drop_table("drift_samples")
