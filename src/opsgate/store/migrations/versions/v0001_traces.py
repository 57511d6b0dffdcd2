"""Traces, their spans, and per-minute usage buckets.

Revision ID: v0001_traces
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "v0001_traces"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copy of the histogram layout at this revision (opsgate.store.histogram.COLUMNS).
LATENCY_BUCKETS = [f"lat_b{i:02d}" for i in range(42)]
USAGE_KEY = ["minute", "model", "deployment", "key_id", "team_id", "end_user", "status"]
USAGE_COUNTERS = [
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_micros",
    "cache_hits",
    "ttft_count",
    *LATENCY_BUCKETS,
]


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    _create_traces()
    _create_spans()
    _create_usage_minute()


def _create_traces() -> None:
    op.create_table(
        "traces",
        sa.Column("trace_id", sa.String(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("endpoint", sa.String(), nullable=False),
        sa.Column("model_requested", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.String(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        sa.Column("model_served", sa.String(), nullable=True),
        sa.Column("deployment", sa.String(), nullable=True),
        sa.Column("provider", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=True),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("end_user", sa.String(), nullable=True),
        sa.Column("session_id", sa.String(), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("cache", sa.String(), nullable=True),
        sa.Column("finish_reason", sa.String(), nullable=True),
        sa.Column("prompt_version", sa.String(), nullable=True),
        sa.Column("experiment_variant", sa.String(), nullable=True),
        sa.Column("guard_verdicts", _json(), nullable=False),
        sa.Column("request_body", sa.LargeBinary(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("trace_id", name="pk_traces"),
    )
    op.create_index("ix_traces_started_at", "traces", ["started_at"])
    for column in ("model_requested", "deployment", "key_id", "team_id", "end_user"):
        op.create_index(f"ix_traces_{column}_started_at", "traces", [column, "started_at"])
    op.create_index("ix_traces_session_id", "traces", ["session_id"])
    op.create_index("ix_traces_status_started_at", "traces", ["status", "started_at"])
    op.create_index("ix_traces_cache_started_at", "traces", ["cache", "started_at"])


def _create_spans() -> None:
    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("span_id", sa.String(), nullable=False),
        sa.Column("parent_id", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attributes", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trace_id"],
            ["traces.trace_id"],
            name="fk_spans_trace_id_traces",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("trace_id", "position", name="pk_spans"),
    )


def _create_usage_minute() -> None:
    op.create_table(
        "usage_minute",
        sa.Column("minute", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.String(), nullable=False) for name in USAGE_KEY[1:]),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            for name in USAGE_COUNTERS
        ),
        sa.Column("latency_ms_sum", sa.Double(), nullable=False, server_default="0"),
        sa.Column("ttft_ms_sum", sa.Double(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint(*USAGE_KEY, name="pk_usage_minute"),
    )
    for column in ("model", "key_id", "team_id", "end_user"):
        op.create_index(f"ix_usage_minute_{column}_minute", "usage_minute", [column, "minute"])


def downgrade() -> None:
    op.drop_table("usage_minute")
    op.drop_table("spans")
    op.drop_table("traces")
