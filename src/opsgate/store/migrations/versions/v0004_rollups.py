"""Hourly and daily usage tables, filled from `usage_minute`; what cache hits saved, per trace and
per usage bucket.

`usage_hour` / `usage_day` keep every dimension but the end user; `usage_hour_keys` /
`usage_day_keys` keep only key and team (totals over time for everyone, a team or a key);
`usage_hour_users` / `usage_day_users` keep only the end user (top end users, per-user totals).

Rollups over days and weeks read these instead of scanning a row per minute, model, key and end
user. The end user is kept apart: combined with the other dimensions it multiplies rows.

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

# Frozen copy of the usage layout at this revision (opsgate.store.tables.traces).
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
TABLES = {
    "usage_hour": ("hour", 3600, DIMENSIONS),
    "usage_day": ("day", 86400, DIMENSIONS),
    "usage_hour_keys": ("hour", 3600, ["key_id", "team_id"]),
    "usage_day_keys": ("day", 86400, ["key_id", "team_id"]),
    "usage_hour_users": ("hour", 3600, ["end_user"]),
    "usage_day_users": ("day", 86400, ["end_user"]),
}


def upgrade() -> None:
    saved = "cost_saved_micros"
    for table in ("traces", "usage_minute"):
        op.add_column(table, sa.Column(saved, sa.BigInteger(), nullable=False, server_default="0"))
    for table, (period, seconds, dims) in TABLES.items():
        op.create_table(
            table,
            sa.Column(period, sa.BigInteger(), nullable=False),
            *(sa.Column(name, sa.String(), nullable=False) for name in dims),
            *(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
                for name in COUNTERS
            ),
            *(sa.Column(name, sa.Double(), nullable=False, server_default="0") for name in SUMS),
            sa.PrimaryKeyConstraint(period, *dims, name=f"pk_{table}"),
        )
        for column in ("model", "key_id", "team_id", "end_user"):
            if column in dims:
                op.create_index(f"ix_{table}_{column}_{period}", table, [column, period])
        _backfill(table, period, seconds, dims)


def _backfill(table: str, period: str, seconds: int, columns: list[str]) -> None:
    """Existing per-minute rows, folded into the new table in one statement."""
    values = [*COUNTERS, *SUMS]
    dims = ", ".join(columns)
    op.execute(
        f"INSERT INTO {table} ({period}, {dims}, {', '.join(values)}) "
        f"SELECT minute - minute % {seconds}, {dims}, "
        f"{', '.join(f'SUM({name})' for name in values)} "
        f"FROM usage_minute GROUP BY minute - minute % {seconds}, {dims}"
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
    for table in ("usage_minute", "traces"):
        # Plain ALTER (SQLite 3.35+): a batch rebuild of `traces` would cascade into `spans`.
        op.execute(f"ALTER TABLE {table} DROP COLUMN cost_saved_micros")
