"""Provider-hosted fine-tuning (issue 20): a job's `method` (`lora`, `openai`) and its
`provider` state (the deployment, the provider's job and file ids, its status and recent
events); an adapter's `kind` (`lora`, `hosted`) and, for a hosted one, the `model` name the
provider serves it under (store/tables/tuning.py).

Revision ID: v0019_hosted_tuning
Revises: v0017_promotions
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v0019_hosted_tuning"
down_revision: str | None = "v0017_promotions"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column(
        "tuning_jobs", sa.Column("method", sa.String(), nullable=False, server_default="lora")
    )
    op.add_column("tuning_jobs", sa.Column("provider", _json(), nullable=True))
    op.add_column(
        "tuning_adapters", sa.Column("kind", sa.String(), nullable=False, server_default="lora")
    )
    op.add_column("tuning_adapters", sa.Column("model", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tuning_adapters") as batch:
        batch.drop_column("model")
        batch.drop_column("kind")
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.drop_column("provider")
        batch.drop_column("method")
