"""Evals: `eval_runs` and `eval_results` (store/tables/evals.py); the answer's confidence
(`logprob_mean`, `logprob_min`) and malformed flag (`malformed`) on `traces`.

Revision ID: v0011_evals
Revises: v0010_datasets
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v0011_evals"
down_revision: str | None = "v0010_datasets"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("spec", _json(), nullable=False),
        sa.Column("dataset", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("summary", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_eval_runs"),
    )
    op.create_index("ix_eval_runs_created_at", "eval_runs", ["created_at"])
    op.create_index("ix_eval_runs_team_id_created_at", "eval_runs", ["team_id", "created_at"])
    op.create_table(
        "eval_results",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("row_index", sa.Integer(), nullable=False),
        sa.Column("row_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.String(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("scores", _json(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["eval_runs.id"],
            ondelete="CASCADE",
            name="fk_eval_results_run_id_eval_runs",
        ),
        sa.PrimaryKeyConstraint("run_id", "target", "row_index", name="pk_eval_results"),
    )
    op.create_index("ix_eval_results_trace_id", "eval_results", ["trace_id"])
    # Plain ADD COLUMN (no batch rebuild of `traces`: that would cascade into `spans`).
    op.add_column("traces", sa.Column("logprob_mean", sa.Double(), nullable=True))
    op.add_column("traces", sa.Column("logprob_min", sa.Double(), nullable=True))
    op.add_column("traces", sa.Column("malformed", sa.String(), nullable=True))
    op.create_index("ix_traces_malformed_started_at", "traces", ["malformed", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_traces_malformed_started_at", table_name="traces")
    for name in ("malformed", "logprob_min", "logprob_mean"):
        op.execute(f"ALTER TABLE traces DROP COLUMN {name}")
    op.drop_table("eval_results")
    op.drop_table("eval_runs")
