"""Latency sketches: every usage table trades its 42 sqrt(2)-spaced histogram columns
(`lat_b00`..`lat_b41`) for `latency_ms_min`, `latency_ms_max` and `latency_sketch`, a sparse
histogram with 1% relative error (opsgate.store.histogram).

Existing rows are converted in SQL: an old bucket's count goes to the new bin of its geometric
middle, so an old row reads back as roughly as before (within about 19% of the truth, the old
bucket width), never worse. Its min and max become the bounds of its lowest and highest
non-empty old bucket (the max also at most `latency_ms_sum`): true bounds, only looser, so the
clamp stays sound. Rows written after the upgrade are exact to 1%. Downgrade puts each new
bin's count back into the old bucket its value falls in.

Revision ID: v0007_latency
Revises: v0006_erasures
Create Date: 2026-12-06
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from alembic import op

revision = "v0007_latency"
down_revision: str | None = "v0006_erasures"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copy of both layouts at this revision.
TABLES = [
    "usage_minute",
    "usage_hour",
    "usage_day",
    "usage_hour_keys",
    "usage_day_keys",
    "usage_hour_users",
    "usage_day_users",
]
OLD = [f"lat_b{i:02d}" for i in range(42)]
OLD_BOUNDS = [2 ** (i / 2) for i in range(41)]  # upper bounds of buckets 0..40 (ms)
SCALE = 10**12
_LOG_GAMMA = math.log(1.01 / 0.99)
_LOWEST = math.ceil(math.log(1e-3) / _LOG_GAMMA)


def _bin(ms: float) -> int:
    return math.ceil(math.log(min(max(ms, 1e-3), 1e9)) / _LOG_GAMMA) - _LOWEST + 1


def _value(b: int) -> float:
    return 2 * math.exp((b + _LOWEST - 1) * _LOG_GAMMA) / (1 + math.exp(_LOG_GAMMA))


def _old_bucket(ms: float) -> int:
    return sum(1 for bound in OLD_BOUNDS if bound <= ms)


def _lower(i: int) -> float:
    return 0.0 if i == 0 else OLD_BOUNDS[i - 1]


def _middle(i: int) -> float:
    upper = OLD_BOUNDS[i] if i < len(OLD_BOUNDS) else OLD_BOUNDS[-1] * 2
    return upper / 2 if i == 0 else math.sqrt(_lower(i) * upper)


def _add_columns(table: str) -> None:
    op.add_column(
        table, sa.Column("latency_ms_min", sa.Double(), nullable=False, server_default="0")
    )
    op.add_column(
        table, sa.Column("latency_ms_max", sa.Double(), nullable=False, server_default="0")
    )
    op.add_column(table, sa.Column("latency_sketch", sa.Text(), nullable=False, server_default=""))


def _drop(table: str, columns: list[str]) -> None:
    """One table rebuild on SQLite (a batch), plain ALTERs on PostgreSQL."""
    with op.batch_alter_table(table) as batch:
        for column in columns:
            batch.drop_column(column)


def _convert_sql(table: str, pg: bool) -> str:
    entries = " || ".join(
        f"CASE WHEN {c} > 0 THEN CAST({_bin(_middle(i)) * SCALE} + {c} AS TEXT) || ',' ELSE '' END"
        for i, c in enumerate(OLD)
    )
    lowest = " ".join(f"WHEN {c} > 0 THEN {_lower(i)!r}" for i, c in enumerate(OLD))
    highest = " ".join(
        f"WHEN {c} > 0 THEN {OLD_BOUNDS[i]!r}" for i, c in reversed(list(enumerate(OLD[:-1])))
    )
    least = "least" if pg else "min"
    return (
        f"UPDATE {table} SET latency_sketch = rtrim({entries}, ','), "
        f"latency_ms_min = CASE {lowest} ELSE 0 END, "
        f"latency_ms_max = CASE WHEN {OLD[-1]} > 0 THEN latency_ms_sum "
        f"ELSE {least}(latency_ms_sum, CASE {highest} ELSE 0 END) END"
    )


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        _add_columns(table)
        op.execute(_convert_sql(table, pg))
        _drop(table, OLD)


def _restore_sql(table: str, pg: bool) -> str:
    ranges: dict[int, list[int]] = {}
    for b in range(1, _bin(1e9) + 1):
        ranges.setdefault(_old_bucket(_value(b)), []).append(b)
    ranges.setdefault(0, []).append(0)  # zero latencies
    sets = []
    for i, c in enumerate(OLD):
        bins = ranges.get(i)
        if not bins:
            continue
        low, high = min(bins), max(bins)
        if pg:
            total = (
                f"(SELECT coalesce(sum(e % {SCALE}), 0) FROM unnest(string_to_array("
                f"nullif(latency_sketch, ''), ',')::bigint[]) AS e "
                f"WHERE e / {SCALE} BETWEEN {low} AND {high})"
            )
        else:
            total = (
                f"(SELECT coalesce(sum(value % {SCALE}), 0) FROM json_each('[' || "
                f"latency_sketch || ']') WHERE value / {SCALE} BETWEEN {low} AND {high})"
            )
        sets.append(f"{c} = {total}")
    return f"UPDATE {table} SET {', '.join(sets)}"


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        for column in OLD:
            op.add_column(
                table, sa.Column(column, sa.BigInteger(), nullable=False, server_default="0")
            )
        op.execute(_restore_sql(table, pg))
        _drop(table, ["latency_ms_min", "latency_ms_max", "latency_sketch"])
