"""The tuning tables (migrations `v0015_tuning`, `v0016_tuning_cards`, `v0019_hosted_tuning`).

- `tuning_jobs`: one LoRA job: its dataset version, base model, settings, status, progress
  (steps, the loss per step), metrics, the error of a failed job, a heartbeat (a job whose
  runner died is taken up again), and the taint an end user's erasure leaves.
- `tuning_subjects`: the end users whose dataset rows a job trained on (erasure marks the
  job and its adapter tainted, then deletes these rows).
- `tuning_adapters`: the adapter registry: name, base fingerprint, lineage (dataset version,
  job), metrics, where the weights lie, the owning team.
"""

from __future__ import annotations

from sqlalchemy import Column, Double, Index, Integer, String, Table, Text

from opsgate.store.tables.traces import json_type, metadata

tuning_jobs = Table(
    "tuning_jobs",
    metadata,
    Column("id", String, primary_key=True),
    Column("team_id", String),
    Column("created_by", String, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("status", String, nullable=False),  # queued running succeeded failed cancelled
    Column("cancel_requested", Integer, nullable=False),  # 1: a running job is asked to stop
    Column("dataset_id", String, nullable=False),
    Column("dataset_version", Integer, nullable=False),
    Column("base", String, nullable=False),
    Column("base_fingerprint", String, nullable=False),
    Column("adapter", String, nullable=False),  # the name it registers
    Column("settings", json_type(), nullable=False),
    Column("examples", json_type(), nullable=False),  # train / validation counts
    Column("steps", Integer, nullable=False),
    Column("total_steps", Integer),
    Column("losses", json_type(), nullable=False),
    Column("metrics", json_type(), nullable=False),
    Column("error", Text),
    Column("started_at", Double),
    Column("finished_at", Double),
    Column("heartbeat_at", Double),
    Column("tainted_at", Double),
    Column("tainted_subjects", Integer, nullable=False),
    # v0016: the scorers comparing base and adapter, and the data card (sources, filters, counts)
    Column("evaluation", json_type()),
    Column("card", json_type()),
    # v0019: `lora` (a local worker) or `openai` (the provider's fine-tuning jobs API), and
    # a hosted job's provider state (deployment, job and file ids, status, recent events)
    Column("method", String, nullable=False, server_default="lora"),
    Column("provider", json_type()),
    Index(None, "status", "created_at"),
    Index(None, "team_id", "created_at"),
)

tuning_subjects = Table(
    "tuning_subjects",
    metadata,
    Column("job_id", String, primary_key=True),
    Column("end_user", String, primary_key=True),
    Index(None, "end_user"),
)

tuning_adapters = Table(
    "tuning_adapters",
    metadata,
    Column("name", String, primary_key=True),
    Column("team_id", String),
    Column("base", String, nullable=False),
    Column("base_fingerprint", String, nullable=False),
    Column("dataset_id", String, nullable=False),
    Column("dataset_version", Integer, nullable=False),
    Column("job_id", String, nullable=False),
    Column("metrics", json_type(), nullable=False),
    Column("path", String, nullable=False),
    Column("created_by", String, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("tainted_at", Double),
    Column("card", json_type()),  # v0016: the data card of the job that trained it
    # v0019: `lora` (weights at `path`) or `hosted` (no local weights: the provider serves it
    # under `model`)
    Column("kind", String, nullable=False, server_default="lora"),
    Column("model", String),
)
