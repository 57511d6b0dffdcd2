"""Knowledge bases: documents, chunks, full-text and vector indexes (issue 18).

Revision ID: v0013_rag
Revises: v0012_experiments
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "v0013_rag"
down_revision: str | None = "v0012_experiments"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
