"""Fine-tuning jobs, the end users they trained on, the adapter registry (issue 20):
`tuning_jobs`, `tuning_subjects`, `tuning_adapters` (store/tables/tuning.py).

Revision ID: v0015_tuning
Revises: v0014_drift
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v0015_tuning"
down_revision: str | None = "v0014_drift"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tuning_jobs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("cancel_requested", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.String(), nullable=False),
        sa.Column("dataset_version", sa.Integer(), nullable=False),
        sa.Column("base", sa.String(), nullable=False),
        sa.Column("base_fingerprint", sa.String(), nullable=False),
        sa.Column("adapter", sa.String(), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("examples", _json(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("losses", _json(), nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("heartbeat_at", sa.Double(), nullable=True),
        sa.Column("tainted_at", sa.Double(), nullable=True),
        sa.Column("tainted_subjects", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tuning_jobs"),
    )
    op.create_index("ix_tuning_jobs_status_created_at", "tuning_jobs", ["status", "created_at"])
    op.create_index("ix_tuning_jobs_team_id_created_at", "tuning_jobs", ["team_id", "created_at"])
    op.create_table(
        "tuning_subjects",
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("end_user", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "end_user", name="pk_tuning_subjects"),
    )
    op.create_index("ix_tuning_subjects_end_user", "tuning_subjects", ["end_user"])
    op.create_table(
        "tuning_adapters",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("base", sa.String(), nullable=False),
        sa.Column("base_fingerprint", sa.String(), nullable=False),
        sa.Column("dataset_id", sa.String(), nullable=False),
        sa.Column("dataset_version", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("tainted_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_tuning_adapters"),
    )


def downgrade() -> None:
    op.drop_table("tuning_adapters")
    op.drop_index("ix_tuning_subjects_end_user", table_name="tuning_subjects")
    op.drop_table("tuning_subjects")
    op.drop_index("ix_tuning_jobs_team_id_created_at", table_name="tuning_jobs")
    op.drop_index("ix_tuning_jobs_status_created_at", table_name="tuning_jobs")
    op.drop_table("tuning_jobs")
