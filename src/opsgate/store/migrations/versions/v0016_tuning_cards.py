"""Tuning evaluation and data cards (issue 20): a job's `evaluation` settings (the scorers
comparing base and adapter, the answer length) and the data `card` of a job and of the adapter
it registered (store/tables/tuning.py).

Revision ID: v0016_tuning_cards
Revises: v0015_tuning
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v0016_tuning_cards"
down_revision: str | None = "v0015_tuning"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("tuning_jobs", sa.Column("evaluation", _json(), nullable=True))
    op.add_column("tuning_jobs", sa.Column("card", _json(), nullable=True))
    op.add_column("tuning_adapters", sa.Column("card", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tuning_adapters") as batch:
        batch.drop_column("card")
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.drop_column("card")
        batch.drop_column("evaluation")
