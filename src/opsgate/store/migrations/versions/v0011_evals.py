"""Evaluation runs, their results and aggregates (issue 16).

Revision ID: v0011_evals
Revises: v0010_datasets
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "v0011_evals"
down_revision: str | None = "v0010_datasets"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
