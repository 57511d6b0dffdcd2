"""Fine-tuning jobs and the adapter registry (issue 20).

Revision ID: v0015_tuning
Revises: v0014_drift
Create Date: 2026-12-06
"""

from __future__ import annotations

revision = "v0015_tuning"
down_revision: str | None = "v0014_drift"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
