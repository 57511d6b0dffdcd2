"""The drift tables (migration `v0014_drift`).

- `drift_samples`: one row per sampled chat trace: where it came from (scope columns, the end
  user for erasure), small features of its prompt and answer, and, for the embedded share, the
  prompt's embedding as float16 bytes with the embedder's name.
- `drift_monitors`: monitors created through the API (config monitors live in the file).
- `drift_results`: one row per evaluation: state, statistic, threshold, p-value, effect size,
  sample sizes and the detail (sub-tests, top clusters with example trace ids).
- `drift_proposals`: what a monitor entering drift proposes, and who accepted or dismissed it.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Double, Index, Integer, LargeBinary, String, Table, Text

from opsgate.store.tables.traces import json_type, metadata

drift_samples = Table(
    "drift_samples",
    metadata,
    Column("trace_id", String, primary_key=True),
    Column("created_at", Double, nullable=False),  # the trace's start, epoch seconds
    Column("model", String, nullable=False),
    Column("prompt_name", String),
    Column("key_id", String),
    Column("team_id", String),
    Column("user_id", String),
    Column("end_user", String),
    Column("prompt_chars", Integer),  # None: bodies were not kept
    Column("answer_chars", Integer),
    Column("completion_tokens", Integer, nullable=False),
    Column("language", String),
    Column("refusal", Boolean),
    Column("finish_reason", String),
    Column("tool_calls", Boolean, nullable=False),
    Column("json_valid", Boolean),  # None: no JSON was asked for
    Column("embedder", String),
    Column("embedding", LargeBinary),  # float16, little-endian
    Index(None, "created_at"),
    Index(None, "model", "created_at"),
    Index(None, "end_user"),
)

drift_monitors = Table(
    "drift_monitors",
    metadata,
    Column("name", String, primary_key=True),
    Column("spec", json_type(), nullable=False),  # MonitorConfig fields
    Column("team_id", String),
    Column("created_by", String),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

drift_results = Table(
    "drift_results",
    metadata,
    Column("id", String, primary_key=True),
    Column("monitor", String, nullable=False),
    Column("evaluated_at", Double, nullable=False),
    Column("state", String, nullable=False),  # ok, warning, drift, insufficient_data, error
    Column("statistic", Double),
    Column("threshold", Double),
    Column("p_value", Double),
    Column("effect", Double),
    Column("n_ref", Integer, nullable=False),
    Column("n_cur", Integer, nullable=False),
    Column("reason", Text),
    Column("detail", json_type(), nullable=False),
    Index(None, "monitor", "evaluated_at"),
)

drift_proposals = Table(
    "drift_proposals",
    metadata,
    Column("id", String, primary_key=True),
    Column("monitor", String, nullable=False),
    Column("result_id", String, nullable=False),
    Column("kind", String, nullable=False),  # dataset, eval_run, refresh_reference
    Column("status", String, nullable=False),  # open, accepted, dismissed
    Column("team_id", String),
    Column("created_at", Double, nullable=False),
    Column("decided_at", Double),
    Column("decided_by", String),
    Column("detail", json_type(), nullable=False),  # trace ids, window, suggestion
    Column("outcome", json_type()),  # what accepting did (dataset id, ...)
    Index(None, "status", "created_at"),
    Index(None, "monitor", "created_at"),
)
