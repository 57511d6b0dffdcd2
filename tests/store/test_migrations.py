"""Migrations: they apply to an empty database, are repeatable, and match `store/schema.py`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, Table, inspect, select
from sqlalchemy.engine import Connection

from opsgate.store import dispose_engine, make_engine, migrations
from opsgate.store.migrate import VERSION_TABLE, alembic_config, current, head, upgrade
from opsgate.store.tables.traces import (
    metadata,
    usage_day,
    usage_day_keys,
    usage_day_prompts,
    usage_day_users,
    usage_hour,
    usage_hour_keys,
    usage_hour_prompts,
    usage_hour_users,
)
from opsgate.store.usage_buckets import aggregate, bucket_rows
from tests.store.conftest import Backend, make_trace

TABLES = {
    "traces",
    "spans",
    "usage_minute",
    "usage_hour",
    "usage_day",
    "usage_hour_keys",
    "usage_day_keys",
    "usage_hour_users",
    "usage_day_users",
    "teams",
    "users",
    "api_keys",
    "access_version",
    "alert_events",
    "audit_log",
    "erasures",
    "scores",
    "eval_runs",
    "eval_results",
    "review_queues",
    "review_items",
    "review_actions",
    "datasets",
    "dataset_versions",
    "dataset_rows",
    "dataset_exports",
    "prompts",
    "prompt_versions",
    "prompt_labels",
    "prompt_label_history",
    "prompt_changes",
    "usage_hour_prompts",
    "usage_day_prompts",
    "experiments",
    "experiment_events",
    "experiment_assignments",
    "experiment_changes",
    "rag_knowledge_bases",
    "rag_documents",
    "rag_document_acl",
    "rag_chunks",
    "drift_samples",
    "drift_monitors",
    "drift_results",
    "drift_proposals",
    "tuning_jobs",
    "tuning_subjects",
    "tuning_adapters",
    "tuning_promotions",
    VERSION_TABLE,
}
FTS_PREFIX = "rag_chunks_fts"
"""SQLite's FTS5 table over the chunks and its shadow tables: dialect DDL in v0013_rag, outside
the shared metadata."""


def _tables(conn: Connection) -> set[str]:
    return {t for t in inspect(conn).get_table_names() if not t.startswith(FTS_PREFIX)}


BACKEND_ONLY_INDEXES = frozenset({"ix_rag_chunks_tsv"})
"""Made by raw DDL in a migration for one backend only (PostgreSQL's GIN index over the chunks'
tsvector expression); the table metadata cannot declare an expression index per dialect."""


BACKEND_ONLY_COLUMNS = frozenset({("rag_chunks", "tsv"), ("rag_chunks", "embedding")})
"""PostgreSQL's stored tsvector and pgvector columns of the chunks (v0013_rag, raw DDL)."""


def _compared(name: str | None, kind: str, parent: dict[str, str | None]) -> bool:
    if kind == "index" and name in BACKEND_ONLY_INDEXES:
        return False
    if kind == "column" and (parent.get("table_name"), name) in BACKEND_ONLY_COLUMNS:
        return False
    return not (kind == "table" and name is not None and name.startswith(FTS_PREFIX))


NEWEST = max(p.stem for p in (Path(migrations.__file__).parent / "versions").glob("v[0-9]*.py"))
"""The newest revision file: migrations are append-only and numbered."""


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(
        conn,
        opts={"version_table": VERSION_TABLE, "compare_type": True, "include_name": _compared},
    )
    return list(compare_metadata(context, metadata))


async def test_upgrade_empty_database_to_head(empty_backend: Backend) -> None:
    assert await current(empty_backend.url) is None
    await upgrade(empty_backend.url)
    assert await current(empty_backend.url) == head() == NEWEST
    await upgrade(empty_backend.url)  # every start calls it; the second run is a no-op
    engine = make_engine(empty_backend.url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == TABLES
    finally:
        await dispose_engine(engine)


async def test_migrations_match_the_schema_module(backend: Backend) -> None:
    engine = make_engine(backend.url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await dispose_engine(engine)


async def test_downgrade_to_base_removes_the_tables(backend: Backend) -> None:
    def downgrade(conn: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "base")

    engine = make_engine(backend.url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == {VERSION_TABLE}
    finally:
        await dispose_engine(engine)


def _insert_as_of_then(conn: Connection, table: str, rows: list[dict[str, object]]) -> None:
    """Insert `rows` into `table` as it is at the current revision: only the columns it has
    then (later revisions add key columns and change the latency columns)."""
    columns = {c["name"] for c in inspect(conn).get_columns(table)}
    then = Table(table, MetaData(), *(Column(name) for name in columns))
    conn.execute(then.insert(), [{k: v for k, v in r.items() if k in columns} for r in rows])


async def test_rollup_tables_are_backfilled_from_minute_buckets(empty_backend: Backend) -> None:
    """A database that already has usage (v0003) gets hour/day rows that add up to it."""

    def migrate(conn: Connection, target: str) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, target)

    records = [make_trace(i) for i in range(200)]
    buckets = bucket_rows(aggregate(records))
    engine = make_engine(empty_backend.url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(migrate, "v0003_alerts")
            await conn.run_sync(_insert_as_of_then, "usage_minute", buckets)
            await conn.run_sync(migrate, "head")
        async with engine.connect() as conn:
            for table, period in (
                (usage_hour, "hour"),
                (usage_day, "day"),
                (usage_hour_keys, "hour"),
                (usage_day_keys, "day"),
                (usage_hour_users, "hour"),
                (usage_day_users, "day"),
                (usage_hour_prompts, "hour"),
                (usage_day_prompts, "day"),
            ):
                rows = (await conn.execute(select(table))).mappings().all()
                assert sum(r["requests"] for r in rows) == len(records)
                assert sum(r["cost_micros"] for r in rows) == sum(r.cost_micros for r in records)
                seconds = 3600 if period == "hour" else 86400
                assert all(r[period] % seconds == 0 for r in rows)
    finally:
        await dispose_engine(engine)
