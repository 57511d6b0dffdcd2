"""Drift monitors, results, proposals, sampled embeddings (issue 19).

Revision ID: v0014_drift
Revises: v0013_rag
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "v0014_drift"
down_revision: str | None = "v0013_rag"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
