"""Review queues (queues, items, reviewer actions) and datasets (datasets, versions, rows, exports).

Revision ID: v0010_datasets
Revises: v0009_prompts
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v0010_datasets"
down_revision: str | None = "v0009_prompts"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _row_id() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    _review()
    _datasets()


def _review() -> None:
    op.create_table(
        "review_queues",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("rule", _json(), nullable=False),
        sa.Column("reviewers", _json(), nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("lease_seconds", sa.Double(), nullable=False),
        sa.Column("since", sa.Double(), nullable=False),
        sa.Column("filled_until", sa.Double(), nullable=False),
        sa.Column("scored_until", sa.Double(), nullable=False),
        sa.Column("filled_at", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_queues"),
        sa.UniqueConstraint("owner", "name", name="uq_review_queues_owner_name"),
    )
    op.create_table(
        "review_items",
        sa.Column("queue_id", sa.String(), nullable=False),
        sa.Column("trace_id", sa.String(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("assigned_to", sa.String(), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("done_by", sa.String(), nullable=True),
        sa.Column("done_at", sa.Double(), nullable=True),
        sa.Column("enqueued_at", sa.Double(), nullable=False),
        sa.Column("claims", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["review_queues.id"],
            name="fk_review_items_queue_id_review_queues",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["trace_id"],
            ["traces.trace_id"],
            name="fk_review_items_trace_id_traces",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("queue_id", "trace_id", name="pk_review_items"),
    )
    op.create_index(
        "ix_review_items_queue_id_state_started_at",
        "review_items",
        ["queue_id", "state", "started_at"],
    )
    op.create_index("ix_review_items_trace_id", "review_items", ["trace_id"])
    op.create_index("ix_review_items_queue_id_done_by", "review_items", ["queue_id", "done_by"])
    op.create_table(
        "review_actions",
        sa.Column("id", _row_id(), autoincrement=True, nullable=False),
        sa.Column("queue_id", sa.String(), nullable=False),
        sa.Column("trace_id", sa.String(), nullable=False),
        sa.Column("reviewer", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("score_ids", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["queue_id", "trace_id"],
            ["review_items.queue_id", "review_items.trace_id"],
            name="fk_review_actions_queue_id_review_items",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_review_actions"),
    )
    op.create_index(
        "ix_review_actions_queue_id_reviewer_id", "review_actions", ["queue_id", "reviewer", "id"]
    )
    op.create_index(
        "ix_review_actions_queue_id_trace_id_reviewer",
        "review_actions",
        ["queue_id", "trace_id", "reviewer"],
    )


def _datasets() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=True),
        sa.Column("pending_until", sa.Double(), nullable=True),
        sa.Column("pending_by", sa.String(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("owner", "name", name="uq_datasets_owner_name"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("dataset_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("change", sa.String(), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_dataset_versions_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "version", name="pk_dataset_versions"),
    )
    op.create_table(
        "dataset_rows",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("dataset_id", sa.String(), nullable=False),
        sa.Column("added_in", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("removed_in", sa.Integer(), nullable=True),
        sa.Column("source_trace_id", sa.String(), nullable=True),
        sa.Column("end_user", sa.String(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("input_hash", sa.String(), nullable=False),
        sa.Column("has_output", sa.Boolean(), nullable=False),
        sa.Column("has_reference", sa.Boolean(), nullable=False),
        sa.Column("scores", _json(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_dataset_rows_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_rows"),
    )
    op.create_index(
        "ix_dataset_rows_dataset_id_added_in_seq", "dataset_rows", ["dataset_id", "added_in", "seq"]
    )
    op.create_index(
        "ix_dataset_rows_dataset_id_input_hash", "dataset_rows", ["dataset_id", "input_hash"]
    )
    op.create_index(
        "ix_dataset_rows_dataset_id_source_trace_id",
        "dataset_rows",
        ["dataset_id", "source_trace_id"],
    )
    op.create_index("ix_dataset_rows_end_user", "dataset_rows", ["end_user"])
    op.create_table(
        "dataset_exports",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("dataset_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(), nullable=False),
        sa.Column("redacted", sa.Boolean(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("redactions", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("completed_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_dataset_exports_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_exports"),
    )
    op.create_index(
        "ix_dataset_exports_dataset_id_started_at",
        "dataset_exports",
        ["dataset_id", "started_at"],
    )


def downgrade() -> None:
    for table in (
        "dataset_exports",
        "dataset_rows",
        "dataset_versions",
        "datasets",
        "review_actions",
        "review_items",
        "review_queues",
    ):
        op.drop_table(table)
