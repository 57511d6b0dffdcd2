"""Review queues and datasets (filled by issue 14, second part).

Revision ID: v0010_datasets
Revises: v0009_prompts
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "v0010_datasets"
down_revision: str | None = "v0009_prompts"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
