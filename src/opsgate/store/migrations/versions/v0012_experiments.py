"""Experiments: definitions, assignments, decisions, trace columns (issue 17).

Revision ID: v0012_experiments
Revises: v0011_evals
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "v0012_experiments"
down_revision: str | None = "v0011_evals"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
