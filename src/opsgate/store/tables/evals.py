"""The eval tables: `eval_runs` (one row per run: its spec, status and aggregates) and
`eval_results` (one row per dataset row and target: status, latency, cost, trace id, the
scores as a JSON object, and the output sealed at rest); migration `v0011_evals` creates them.

Per-example scores stay with their run (a run is re-read, compared and resumed from here);
scores about a trace go to the one score store (`scores`, source `evaluator`) as well.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from opsgate.store.tables.traces import json_type, metadata

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("status", String, nullable=False),  # running, completed, cancelled, ...
    Column("spec", json_type(), nullable=False),  # targets, scorers, dataset reference
    Column("dataset", String, nullable=False),
    Column("owner", String),  # the key id (or `master`, `cli`) that started it
    Column("user_id", String),  # the owner key's user
    Column("team_id", String),
    Column("created_at", Double, nullable=False),  # epoch seconds
    Column("updated_at", Double, nullable=False),
    Column("finished_at", Double),
    Column("rows_done", Integer, nullable=False),
    Column("cost_micros", BigInteger, nullable=False),
    Column("error", Text),
    Column("summary", json_type()),  # per target and scorer: mean, CI, failures
    Index(None, "created_at"),
    Index(None, "team_id", "created_at"),
)

eval_results = Table(
    "eval_results",
    metadata,
    Column("run_id", String, ForeignKey("eval_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("target", String, primary_key=True),
    Column("row_index", Integer, primary_key=True),
    Column("row_id", String),
    Column("status", String, nullable=False),  # ok, failed (the target call failed)
    Column("error", Text),
    Column("trace_id", String),
    Column("latency_ms", Double),
    Column("cost_micros", BigInteger, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("scores", json_type(), nullable=False),  # name -> {value, label, reason, error}
    Column("body", LargeBinary),  # the output, sealed (store/crypto.py); None without a key
    Column("created_at", Double, nullable=False),
    Index(None, "trace_id"),
)
