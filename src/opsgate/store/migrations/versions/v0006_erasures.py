"""Erasure tombstones: trace writes drop an erased end user's earlier traces arriving late.

Revision ID: v0006_erasures
Revises: v0005_compliance
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0006_erasures"
down_revision: str | None = "v0005_compliance"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("erased_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("subject", name="pk_erasures"),
    )


def downgrade() -> None:
    op.drop_table("erasures")
