"""The experiments' tables (experiments/sql.py reads and writes them), on the shared metadata;
migration `v0012_experiments` creates them.

`experiments` holds one row per experiment, whether its definition came from the config file
(`source = 'config'`, kept in step at start-up and on reload) or from the admin API: the
definition as JSON, its state (running, paused, stopped, promoted), the decision once one is
reached, and `slot_start`, where its share of an exclusion group begins (fixed when it is
created, so a later experiment in the group never moves its units). `experiment_events` is the
append-only decision log (state changes, decisions, promotions, bandit allocations).
`experiment_assignments` remembers the variant of each unit of a bandit experiment (weights
change over time; a unit keeps the variant it got first). `experiment_changes` is one counter
row bumped with every change, which replicas poll (as `prompt_changes`).

Which variant a trace was served is on the trace itself (`traces.experiment`, `traces.variant`):
outcomes join scores to variants through `trace_id` or `session_id`, never through a copy.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)

from opsgate.store.tables.traces import json_type, metadata

experiments = Table(
    "experiments",
    metadata,
    Column("name", String, primary_key=True),
    Column("team_id", String, nullable=False),  # '' for experiments of no team
    Column("source", String, nullable=False),  # config | api
    Column("spec", json_type(), nullable=False),
    Column("status", String, nullable=False),
    Column("decision", json_type()),
    Column("slot_start", Double, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("created_by", String),
    Index(None, "team_id", "created_at"),
)

experiment_events = Table(
    "experiment_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("experiment", String, nullable=False),
    Column("at", Double, nullable=False),
    Column("kind", String, nullable=False),
    Column("actor", String),
    Column("detail", json_type(), nullable=False),
    Index(None, "experiment", "seq"),
)

experiment_assignments = Table(
    "experiment_assignments",
    metadata,
    Column("experiment", String, nullable=False),
    Column("unit", String, nullable=False),
    Column("variant", String, nullable=False),
    Column("assigned_at", Double, nullable=False),
    PrimaryKeyConstraint("experiment", "unit"),
)

experiment_changes = Table(
    "experiment_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)
"""One row (id 1) bumped in the same transaction as every experiment change."""
