"""The tables, as SQLAlchemy Core: the single description both dialects and the queries share.

Migrations are hand-written beside this (store/migrations); a test checks the two agree. Types
stay portable: epoch seconds as DOUBLE, money as integer micro-dollars (BIGINT), JSON as JSONB on
PostgreSQL, bodies as BLOB/BYTEA. Text columns have no length, so PostgreSQL never rejects a long
model name or error message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def json_type() -> TypeEngine[Any]:
    """JSON everywhere, JSONB on PostgreSQL so metadata can get a GIN index later."""
    return JSON().with_variant(JSONB(), "postgresql")


traces = Table(
    "traces",
    metadata,
    Column("trace_id", String, primary_key=True),
    Column("started_at", Double, nullable=False),  # epoch seconds
    Column("duration_ms", Double, nullable=False),
    Column("endpoint", String, nullable=False),
    Column("model_requested", String, nullable=False),
    Column("status", String, nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("error_type", String),
    Column("error_message", Text),
    Column("ttft_ms", Double),
    Column("model_served", String),
    Column("deployment", String),
    Column("provider", String),
    Column("attempts", Integer, nullable=False),
    Column("fallback", Boolean, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("key_id", String),
    Column("team_id", String),
    Column("user_id", String),
    Column("end_user", String),
    Column("session_id", String),
    Column("metadata", json_type(), nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("usage_estimated", Boolean, nullable=False),
    Column("cost_micros", BigInteger, nullable=False),
    Column("cost_saved_micros", BigInteger, nullable=False, server_default="0"),
    Column("cache", String),
    Column("finish_reason", String),
    Column("prompt_version", String),
    Column("prompt_name", String),
    Column("prompt_label", String),
    Column("experiment", String),  # the experiment and variant served (v0012_experiments)
    Column("variant", String),
    Column("logprob_mean", Double),  # the answer's confidence (v0011_evals)
    Column("logprob_min", Double),
    Column("malformed", String),  # truncated | invalid_json
    Column("guard_verdicts", json_type(), nullable=False),
    Column("request_body", LargeBinary),
    Column("response_body", LargeBinary),
    # Every filter column leads a (column, started_at) index: equality plus a time range, newest
    # first, is what the trace list asks for.
    Index(None, "started_at"),
    Index(None, "model_requested", "started_at"),
    Index(None, "deployment", "started_at"),
    Index(None, "key_id", "started_at"),
    Index(None, "team_id", "started_at"),
    Index(None, "end_user", "started_at"),
    Index(None, "session_id"),
    Index(None, "status", "started_at"),
    Index(None, "cache", "started_at"),
    Index(None, "prompt_name", "started_at"),
    Index(None, "experiment", "started_at"),
    Index(None, "malformed", "started_at"),
)

spans = Table(
    "spans",
    metadata,
    Column(
        "trace_id",
        String,
        ForeignKey("traces.trace_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer, nullable=False),  # order within the trace
    Column("span_id", String, nullable=False),
    Column("parent_id", String),
    Column("name", String, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("status", String, nullable=False),
    Column("attributes", json_type(), nullable=False),
    # The primary key leads with trace_id, so it is also the index that fetches a trace's spans
    # and that ON DELETE CASCADE uses.
    PrimaryKeyConstraint("trace_id", "position"),
)

USAGE_KEY: tuple[str, ...] = (
    "minute",
    "model",
    "deployment",
    "key_id",
    "team_id",
    "end_user",
    "status",
    "prompt_name",
    "prompt_version",
    "prompt_label",
)
"""The bucket key (primary key). Absent values are stored as '', not NULL, so it stays unique."""

PROMPT_DIMS: tuple[str, ...] = ("prompt_name", "prompt_version", "prompt_label")
"""Only `usage_minute` and the `*_prompts` tables keep these: requests without a prompt have
'' there, so they add no rows; prompt traffic adds one row per version and label in use."""

USAGE_COUNTERS: tuple[str, ...] = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_micros",
    "cache_hits",
    "ttft_count",
    "cost_saved_micros",
)
"""Integer columns added to on upsert."""

USAGE_SUMS: tuple[str, ...] = ("latency_ms_sum", "ttft_ms_sum")
"""Float columns added to on upsert."""

LATENCY: tuple[str, ...] = ("latency_ms_min", "latency_ms_max", "latency_sketch")
"""The exact least and greatest latency, and the latency sketch (`store.histogram`): merged,
not added, on upsert."""


def _usage_table(name: str, period: str, dims: tuple[str, ...]) -> Table:
    """A usage table: one row per period and key, counters that simply add up."""
    indexes = [Index(None, dim, period) for dim in dims if dim in _INDEXED]
    return Table(
        name,
        metadata,
        Column(period, BigInteger, nullable=False),  # epoch seconds at the period's start
        *(Column(dim, String, nullable=False) for dim in dims),
        *(Column(c, BigInteger, nullable=False, server_default="0") for c in USAGE_COUNTERS),
        *(Column(c, Double, nullable=False, server_default="0") for c in USAGE_SUMS),
        Column("latency_ms_min", Double, nullable=False, server_default="0"),
        Column("latency_ms_max", Double, nullable=False, server_default="0"),
        Column("latency_sketch", Text, nullable=False, server_default=""),
        PrimaryKeyConstraint(period, *dims),
        *indexes,
    )


_INDEXED = ("model", "key_id", "team_id", "end_user")
_ALL = USAGE_KEY[1:]
_NO_USER = tuple(d for d in _ALL if d != "end_user" and d not in PROMPT_DIMS)
_TENANT = ("key_id", "team_id")

usage_minute = _usage_table("usage_minute", "minute", _ALL)
"""Per minute, with the end user: recent windows, budgets, and anything asked per end user."""

usage_hour = _usage_table("usage_hour", "hour", _NO_USER)
"""Per hour, without the end user (the dimension that multiplies rows): hourly rollups."""

usage_day = _usage_table("usage_day", "day", _NO_USER)
"""Per UTC day, without the end user: rollups over weeks and months."""

usage_hour_keys = _usage_table("usage_hour_keys", "hour", _TENANT)
"""Per hour, key and team only: totals over time for everyone, a team or a key (charts)."""

usage_day_keys = _usage_table("usage_day_keys", "day", _TENANT)
"""Per UTC day, key and team only."""

usage_hour_users = _usage_table("usage_hour_users", "hour", ("end_user",))
"""Per hour and end user only: "top end users" and per-user totals over days."""

usage_day_users = _usage_table("usage_day_users", "day", ("end_user",))
"""Per UTC day and end user only."""

_PROMPTS = ("model", "team_id", *PROMPT_DIMS)

usage_hour_prompts = _usage_table("usage_hour_prompts", "hour", _PROMPTS)
"""Per hour, model, team and prompt version and label: per-version metrics over days."""

usage_day_prompts = _usage_table("usage_day_prompts", "day", _PROMPTS)
"""Per UTC day, model, team and prompt version and label."""

erasures = Table(
    "erasures",
    metadata,
    # pseudonym("end_user", id) (opsgate.audit): the table never keeps the id it helps forget.
    Column("subject", String, primary_key=True),
    Column("erased_at", Double, nullable=False),  # epoch seconds of the latest erasure
)
"""Erasure tombstones: trace writes drop an erased end user's traces that began before this
(store/erasures.py)."""
