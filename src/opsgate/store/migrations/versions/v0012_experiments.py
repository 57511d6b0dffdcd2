"""Experiments: definitions, assignments, decisions, trace columns (issue 17).

`experiments`, `experiment_events`, `experiment_assignments` and `experiment_changes`
(store/tables/experiments.py); on `traces`, the unused `experiment_variant` becomes `variant`
and `experiment` joins it, indexed with `started_at` (an experiment's outcomes are read by it).

Revision ID: v0012_experiments
Revises: v0011_evals
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "v0012_experiments"
down_revision: str | None = "v0011_evals"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("spec", _json(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("decision", _json(), nullable=True),
        sa.Column("slot_start", sa.Double(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_experiments"),
    )
    op.create_index("ix_experiments_team_id_created_at", "experiments", ["team_id", "created_at"])
    op.create_table(
        "experiment_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("experiment", sa.String(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=True),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_experiment_events"),
    )
    op.create_index(
        "ix_experiment_events_experiment_seq", "experiment_events", ["experiment", "seq"]
    )
    op.create_table(
        "experiment_assignments",
        sa.Column("experiment", sa.String(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("variant", sa.String(), nullable=False),
        sa.Column("assigned_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("experiment", "unit", name="pk_experiment_assignments"),
    )
    op.create_table(
        "experiment_changes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiment_changes"),
    )
    op.execute("INSERT INTO experiment_changes (id, version) VALUES (1, 0)")
    # Plain ALTER TABLE (no batch rebuild of `traces`: that would cascade into `spans`).
    op.execute("ALTER TABLE traces RENAME COLUMN experiment_variant TO variant")
    op.add_column("traces", sa.Column("experiment", sa.String(), nullable=True))
    op.create_index("ix_traces_experiment_started_at", "traces", ["experiment", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_traces_experiment_started_at", table_name="traces")
    op.execute("ALTER TABLE traces DROP COLUMN experiment")
    op.execute("ALTER TABLE traces RENAME COLUMN variant TO experiment_variant")
    op.drop_table("experiment_changes")
    op.drop_table("experiment_assignments")
    op.drop_index("ix_experiment_events_experiment_seq", table_name="experiment_events")
    op.drop_table("experiment_events")
    op.drop_index("ix_experiments_team_id_created_at", table_name="experiments")
    op.drop_table("experiments")
