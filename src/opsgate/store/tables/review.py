"""Review queues, their items and the reviewers' actions, on the shared metadata; migration
`v0010_datasets` creates them.

A queue is a rule (JSON, feedback/review/rules.py) over traces and scores; matching traces are
copied in as items. An item is claimed with one conditional UPDATE (`assigned_to` free or its
lease expired), so two reviewers never hold the same item, whatever process they reach. Items
and actions go with their trace (ON DELETE CASCADE): erasure and retention need no extra step.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from opsgate.store.tables.traces import json_type, metadata

review_queues = Table(
    "review_queues",
    metadata,
    Column("id", String, primary_key=True),  # rq_<hex>
    Column("name", String, nullable=False),
    Column("owner", String, nullable=False),  # the team id, or '' for an admin's global queue
    Column("team_id", String),
    Column("description", Text),
    Column("rule", json_type(), nullable=False),
    Column("reviewers", json_type(), nullable=False),  # user or key ids granted (members)
    Column("metrics", json_type(), nullable=False),  # what a reviewer labels; [] = every one
    Column("lease_seconds", Double, nullable=False),
    Column("since", Double, nullable=False),  # the oldest trace the queue considers
    Column("filled_until", Double, nullable=False),  # traces up to here were looked at
    Column("scored_until", Double, nullable=False),  # scores up to here were looked at
    Column("filled_at", Double),
    Column("created_at", Double, nullable=False),
    Column("created_by", String, nullable=False),
    Column("updated_at", Double, nullable=False),
    UniqueConstraint("owner", "name"),
)

review_items = Table(
    "review_items",
    metadata,
    Column(
        "queue_id",
        String,
        ForeignKey("review_queues.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "trace_id",
        String,
        ForeignKey("traces.trace_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("started_at", Double, nullable=False),  # the trace's, for oldest-first order
    Column("state", String, nullable=False),  # pending | done
    Column("assigned_to", String),  # the reviewer holding it, while lease_until is ahead
    Column("lease_until", Double),
    Column("done_by", String),
    Column("done_at", Double),
    Column("enqueued_at", Double, nullable=False),
    Column("claims", Integer, nullable=False, server_default="0"),
    # The primary key leads with queue_id: progress counts and the claim scan use it.
    Index(None, "queue_id", "state", "started_at"),
    Index(None, "trace_id"),  # the cascade from traces
    Index(None, "queue_id", "done_by"),
    PrimaryKeyConstraint("queue_id", "trace_id"),
)

review_actions = Table(
    "review_actions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("queue_id", String, nullable=False),
    Column("trace_id", String, nullable=False),
    Column("reviewer", String, nullable=False),
    Column("action", String, nullable=False),  # label | skip
    Column("at", Double, nullable=False),
    Column("score_ids", json_type(), nullable=False),  # what a label wrote (undo removes it)
    ForeignKeyConstraint(
        ["queue_id", "trace_id"],
        ["review_items.queue_id", "review_items.trace_id"],
        ondelete="CASCADE",
    ),
    Index(None, "queue_id", "reviewer", "id"),  # undo: my latest action here
    Index(None, "queue_id", "trace_id", "reviewer"),  # the claim: items I skipped
)
