"""Prompt registry: prompts, versions, labels, trace columns (filled by issue 15).

Revision ID: v0009_prompts
Revises: v0008_feedback
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "v0009_prompts"
down_revision: str | None = "v0008_feedback"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
