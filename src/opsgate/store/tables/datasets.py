"""Datasets, their versions, rows and exports, on the shared metadata; migration `v0010_datasets`
creates them.

Versions cost nothing to keep: a row records the version that added it (`added_in`) and the one
that removed it (`removed_in`, NULL while it is in), so version v holds the rows with
`added_in <= v AND (removed_in IS NULL OR removed_in > v)`. A change writes its rows under the
dataset's `pending` version and becomes visible when `version` moves to it, so a reader never
sees half a change. Row content (messages, tools, output, reference) is one sealed JSON body
(AES-GCM, the traces' keys); what filters and exports group by stays in plain columns.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from opsgate.store.tables.traces import json_type, metadata

datasets = Table(
    "datasets",
    metadata,
    Column("id", String, primary_key=True),  # ds_<hex>
    Column("name", String, nullable=False),
    Column("owner", String, nullable=False),  # the team id, or '' for an admin's global dataset
    Column("team_id", String),
    Column("description", Text),
    Column("version", Integer, nullable=False),  # the newest complete version (0: none yet)
    Column("pending", Integer),  # the version a change in progress writes
    Column("pending_until", Double),  # that change's lease: past it, another may take over
    Column("pending_by", String),  # the change holding the lease (a random id)
    Column("created_at", Double, nullable=False),
    Column("created_by", String, nullable=False),
    Column("updated_at", Double, nullable=False),
    UniqueConstraint("owner", "name"),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column(
        "dataset_id",
        String,
        ForeignKey("datasets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("version", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("created_by", String, nullable=False),
    Column("change", String, nullable=False),  # create | add | remove | import
    Column("detail", json_type(), nullable=False),  # where the rows came from
    Column("added", Integer, nullable=False),
    Column("removed", Integer, nullable=False),
    PrimaryKeyConstraint("dataset_id", "version"),
)

dataset_rows = Table(
    "dataset_rows",
    metadata,
    Column("id", String, primary_key=True),  # dr_<hex>; also the body's sealing id
    Column(
        "dataset_id",
        String,
        ForeignKey("datasets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("added_in", Integer, nullable=False),
    Column("seq", Integer, nullable=False),  # order within the change that added it
    Column("removed_in", Integer),
    Column("source_trace_id", String),
    Column("end_user", String),  # erasure by end user removes the row from every version
    Column("model", String),
    Column("input_hash", String, nullable=False),  # the same input, for preference pairs
    Column("has_output", Boolean, nullable=False),
    Column("has_reference", Boolean, nullable=False),
    Column("scores", json_type(), nullable=False),  # {metric: value}, latest per metric
    Column("metadata", json_type(), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", Double, nullable=False),
    Index(None, "dataset_id", "added_in", "seq"),
    Index(None, "dataset_id", "input_hash"),
    Index(None, "dataset_id", "source_trace_id"),
    Index(None, "end_user"),
)

dataset_exports = Table(
    "dataset_exports",
    metadata,
    Column("id", String, primary_key=True),  # dx_<hex>
    Column(
        "dataset_id",
        String,
        ForeignKey("datasets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("version", Integer, nullable=False),
    Column("format", String, nullable=False),
    Column("redacted", Boolean, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("redactions", Integer, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("actor", String, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("completed_at", Double),
    Index(None, "dataset_id", "started_at"),
)
