"""Direct adapter promotions (issue 20): `tuning_promotions` (store/tables/promotions.py).

Revision ID: v0017_promotions
Revises: v0016_tuning_cards
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0017_promotions"
down_revision: str | None = "v0016_tuning_cards"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "tuning_promotions",
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("adapter", sa.String(), nullable=False),
        sa.Column("promoted_at", sa.Double(), nullable=False),
        sa.Column("promoted_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("model", "team_id"),
    )


def downgrade() -> None:
    op.drop_table("tuning_promotions")
