"""Prompt registry: prompts, versions, labels and their history, the change counter; the prompt
a trace rendered (`prompt_name`, `prompt_label` beside the existing `prompt_version`); usage
grouped by prompt version: `usage_minute` gains the three prompt dimensions in its key, and
`usage_hour_prompts` / `usage_day_prompts` keep model, team and prompt per hour and day.

The new usage tables copy their value columns from `usage_hour` as it stands when this runs, so
they match the usage layout of the latency work before this revision; they are backfilled from
`usage_minute` (all earlier traffic had no prompt): counters added, latency least and greatest
kept, latency sketches joined (`_agg`).

Revision ID: v0009_prompts
Revises: v0008_feedback
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "v0009_prompts"
down_revision: str | None = "v0008_feedback"
branch_labels: str | None = None
depends_on: str | None = None

PROMPT_DIMS = ["prompt_name", "prompt_version", "prompt_label"]
MINUTE_KEY = ["minute", "model", "deployment", "key_id", "team_id", "end_user", "status"]
PROMPT_TABLES = {
    "usage_hour_prompts": ("hour", 3600),
    "usage_day_prompts": ("day", 86400),
}
PROMPT_TABLE_DIMS = ["model", "team_id", *PROMPT_DIMS]


def upgrade() -> None:
    _registry()
    # Plain ADD COLUMN (no batch rebuild of `traces`: that would cascade into `spans`).
    op.add_column("traces", sa.Column("prompt_name", sa.String(), nullable=True))
    op.add_column("traces", sa.Column("prompt_label", sa.String(), nullable=True))
    op.create_index("ix_traces_prompt_name_started_at", "traces", ["prompt_name", "started_at"])
    values = _value_columns()
    with op.batch_alter_table("usage_minute") as batch:
        for name in PROMPT_DIMS:
            batch.add_column(sa.Column(name, sa.String(), nullable=False, server_default=""))
        batch.drop_constraint("pk_usage_minute", type_="primary")
        batch.create_primary_key("pk_usage_minute", [*MINUTE_KEY, *PROMPT_DIMS])
    for table, (period, seconds) in PROMPT_TABLES.items():
        op.create_table(
            table,
            sa.Column(period, sa.BigInteger(), nullable=False),
            *(sa.Column(name, sa.String(), nullable=False) for name in PROMPT_TABLE_DIMS),
            *(
                sa.Column(name, kind(), nullable=False, server_default=_zero(kind))
                for name, kind in values
            ),
            sa.PrimaryKeyConstraint(period, *PROMPT_TABLE_DIMS, name=f"pk_{table}"),
        )
        for column in ("model", "team_id"):
            op.create_index(f"ix_{table}_{column}_{period}", table, [column, period])
        names = [name for name, _ in values]
        dims = ", ".join(PROMPT_TABLE_DIMS)
        op.execute(
            f"INSERT INTO {table} ({period}, {dims}, {', '.join(names)}) "
            f"SELECT minute - minute % {seconds}, {dims}, "
            f"{', '.join(_agg(name) for name in names)} "
            f"FROM usage_minute GROUP BY minute - minute % {seconds}, {dims}"
        )


def _registry() -> None:
    op.create_table(
        "prompts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_prompts"),
        sa.UniqueConstraint("team_id", "name", name="uq_prompts_team_id_name"),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("prompt_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", _json(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("author", sa.String(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        _prompt_fk("prompt_versions"),
        sa.PrimaryKeyConstraint("prompt_id", "version", name="pk_prompt_versions"),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("prompt_id", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=True),
        _prompt_fk("prompt_labels"),
        sa.PrimaryKeyConstraint("prompt_id", "label", name="pk_prompt_labels"),
    )
    op.create_table(
        "prompt_label_history",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("prompt_id", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("actor", sa.String(), nullable=True),
        _prompt_fk("prompt_label_history"),
        sa.PrimaryKeyConstraint("seq", name="pk_prompt_label_history"),
    )
    op.create_index(
        "ix_prompt_label_history_prompt_id_label_seq",
        "prompt_label_history",
        ["prompt_id", "label", "seq"],
    )
    op.create_table(
        "prompt_changes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_changes"),
    )
    op.execute("INSERT INTO prompt_changes (id, version) VALUES (1, 0)")


def _prompt_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["prompt_id"], ["prompts.id"], ondelete="CASCADE", name=f"fk_{table}_prompt_id_prompts"
    )


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


Kind = type["sa.types.TypeEngine[Any]"]


def _zero(kind: Kind) -> str:
    return "" if kind is sa.Text else "0"


def _agg(name: str) -> str:
    """How rows of `usage_minute` fold into one: latency least/greatest, sketch texts joined
    (v0007: a reader sums a bin named twice), everything else added."""
    if name == "latency_ms_min":
        return "MIN(latency_ms_min)"
    if name == "latency_ms_max":
        return "MAX(latency_ms_max)"
    if name == "latency_sketch":
        if op.get_bind().dialect.name == "postgresql":
            return "string_agg(latency_sketch, ',')"
        return "group_concat(latency_sketch, ',')"
    return f"SUM({name})"


def _merge(name: str) -> str:
    """`_agg` for an upsert of one row into another."""
    old, new = f"usage_minute.{name}", f"excluded.{name}"
    pg = op.get_bind().dialect.name == "postgresql"
    if name == "latency_ms_min":
        return f"{'least' if pg else 'min'}({old}, {new})"
    if name == "latency_ms_max":
        return f"{'greatest' if pg else 'max'}({old}, {new})"
    if name == "latency_sketch":
        return f"{'btrim' if pg else 'trim'}({old} || ',' || {new}, ',')"
    return f"{old} + {new}"


def _value_columns() -> list[tuple[str, Kind]]:
    """The counter and sum columns of `usage_hour` as they are now (name, type), in order."""
    inspector = sa.inspect(op.get_bind())
    key = {"hour", "model", "deployment", "key_id", "team_id", "status"}
    out: list[tuple[str, Kind]] = []
    for column in inspector.get_columns("usage_hour"):
        if column["name"] in key:
            continue
        kind: Kind = sa.BigInteger if isinstance(column["type"], sa.Integer) else sa.Double
        if isinstance(column["type"], sa.String):
            kind = sa.Text
        out.append((column["name"], kind))
    return out


def downgrade() -> None:
    for table in PROMPT_TABLES:
        op.drop_table(table)
    _fold_prompt_minutes()
    with op.batch_alter_table("usage_minute") as batch:
        batch.drop_constraint("pk_usage_minute", type_="primary")
        batch.create_primary_key("pk_usage_minute", MINUTE_KEY)
        for name in PROMPT_DIMS:
            batch.drop_column(name)
    op.drop_index("ix_traces_prompt_name_started_at", table_name="traces")
    for name in ("prompt_label", "prompt_name"):
        op.execute(f"ALTER TABLE traces DROP COLUMN {name}")
    for table in (
        "prompt_changes",
        "prompt_label_history",
        "prompt_labels",
        "prompt_versions",
        "prompts",
    ):
        op.drop_table(table)


def _fold_prompt_minutes() -> None:
    """Add the per-minute rows of prompt traffic into the rows without a prompt, then delete
    them, so the narrower primary key holds and no request is lost from the counts."""
    inspector = sa.inspect(op.get_bind())
    key = {*MINUTE_KEY, *PROMPT_DIMS}
    names = [c["name"] for c in inspector.get_columns("usage_minute") if c["name"] not in key]
    dims = ", ".join(MINUTE_KEY)
    prompted = " OR ".join(f"{name} <> ''" for name in PROMPT_DIMS)
    sets = ", ".join(f"{n} = {_merge(n)}" for n in names)
    op.execute(
        f"INSERT INTO usage_minute ({dims}, {', '.join(PROMPT_DIMS)}, {', '.join(names)}) "
        f"SELECT * FROM (SELECT {dims}, '', '', '', {', '.join(_agg(n) for n in names)} "
        f"FROM usage_minute WHERE {prompted} GROUP BY {dims}) AS folded WHERE true "
        f"ON CONFLICT ({dims}, {', '.join(PROMPT_DIMS)}) DO UPDATE SET {sets}"
    )
    op.execute(f"DELETE FROM usage_minute WHERE {prompted}")
