"""Hourly and daily usage tables, without the end user, filled from `usage_minute`; what cache
hits saved, per trace and per usage bucket.

Rollups over days and weeks read these instead of scanning a row per minute, model, key and end
user. The end user is left out on purpose: it is the dimension that multiplies rows, and a
rollup that asks for it (rare, and small per user) still reads `usage_minute` by its index.

Revision ID: v0004_rollups
Revises: v0003_alerts
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0004_rollups"
down_revision: str | None = "v0003_alerts"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copy of the usage layout at this revision (opsgate.store.schema).
DIMENSIONS = ["model", "deployment", "key_id", "team_id", "status"]
COUNTERS = [
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_micros",
    "cache_hits",
    "ttft_count",
    "cost_saved_micros",
    *(f"lat_b{i:02d}" for i in range(42)),
]
SUMS = ["latency_ms_sum", "ttft_ms_sum"]
PERIODS = {"usage_hour": ("hour", 3600), "usage_day": ("day", 86400)}


def upgrade() -> None:
    saved = "cost_saved_micros"
    for table in ("traces", "usage_minute"):
        op.add_column(table, sa.Column(saved, sa.BigInteger(), nullable=False, server_default="0"))
    for table, (period, seconds) in PERIODS.items():
        op.create_table(
            table,
            sa.Column(period, sa.BigInteger(), nullable=False),
            *(sa.Column(name, sa.String(), nullable=False) for name in DIMENSIONS),
            *(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
                for name in COUNTERS
            ),
            *(sa.Column(name, sa.Double(), nullable=False, server_default="0") for name in SUMS),
            sa.PrimaryKeyConstraint(period, *DIMENSIONS, name=f"pk_{table}"),
        )
        for column in ("model", "key_id", "team_id"):
            op.create_index(f"ix_{table}_{column}_{period}", table, [column, period])
        _backfill(table, period, seconds)


def _backfill(table: str, period: str, seconds: int) -> None:
    """Existing per-minute rows, folded into the new table in one statement."""
    values = [*COUNTERS, *SUMS]
    dims = ", ".join(DIMENSIONS)
    op.execute(
        f"INSERT INTO {table} ({period}, {dims}, {', '.join(values)}) "
        f"SELECT minute - minute % {seconds}, {dims}, "
        f"{', '.join(f'SUM({name})' for name in values)} "
        f"FROM usage_minute GROUP BY minute - minute % {seconds}, {dims}"
    )


def downgrade() -> None:
    op.drop_table("usage_day")
    op.drop_table("usage_hour")
    for table in ("usage_minute", "traces"):
        # Plain ALTER (SQLite 3.35+): a batch rebuild of `traces` would cascade into `spans`.
        op.execute(f"ALTER TABLE {table} DROP COLUMN cost_saved_micros")
