"""The SQL trace store on SQLite and PostgreSQL: round trips, idempotency, usage buckets."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import delete, func, select

from opsgate.store import (
    MemoryTraceStore,
    RecordRejectedError,
    SqlTraceStore,
    StoreUnavailableError,
    TraceRecord,
    UsageQuery,
    dispose_engine,
    make_engine,
)
from opsgate.store.histogram import RELATIVE_ERROR
from opsgate.store.tables.traces import spans, traces, usage_minute
from tests.store.conftest import Backend, dead_port, make_trace


async def _count(store: SqlTraceStore, table: object = traces) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def _usage_total(store: SqlTraceStore, column: str) -> int:
    async with store.engine.connect() as conn:
        result = await conn.execute(select(func.coalesce(func.sum(usage_minute.c[column]), 0)))
        return int(result.scalar_one())


def test_every_record_field_has_a_column() -> None:
    fields = {f.name for f in dataclasses.fields(TraceRecord)} - {"spans"}
    assert fields == set(traces.c.keys())


async def test_round_trip_with_spans_metadata_and_bodies(sql_store: SqlTraceStore) -> None:
    record = make_trace(
        1,
        request_body=b'{"messages": []}\x00\xff binary',
        response_body=bytes(range(256)),
        guard_verdicts=[{"check": "pii", "action": "mask", "score": 0.5}],
        metadata={"tenant": "acme", "unicode": "żółw 🐢"},
        error_type="upstream_error",
        error_message="bad gateway",
        prompt_version="v3",
        experiment="triage-v7",
        variant="b",
        usage_estimated=True,
        fallback=True,
        finish_reason="stop",
        session_id="sess-1",
        user_id="u-1",
        model_served="gpt-4o-mini-2024-07-18",
    )
    await sql_store.write_batch([record, make_trace(2, spans=[])])
    assert await sql_store.get(record.trace_id) == record
    bare = await sql_store.get("tr-000002")
    assert bare is not None
    assert bare.spans == []
    assert bare.request_body is None
    assert await sql_store.get("nope") is None


async def test_text_the_database_would_refuse_is_cleaned(sql_store: SqlTraceStore) -> None:
    record = make_trace(3, error_message="nul\x00here", metadata={"k": "v\x00"})
    await sql_store.write_batch([record])
    got = await sql_store.get(record.trace_id)
    assert got is not None
    assert got.error_message == "nul\ufffdhere"
    assert got.metadata == {"k": "v\ufffd"}


async def test_replayed_batch_is_counted_once(sql_store: SqlTraceStore) -> None:
    batch = [make_trace(i) for i in range(50)]
    await sql_store.write_batch(batch)
    await sql_store.write_batch(batch)  # a replay after an unknown outcome
    await sql_store.write_batch([*batch[:10], make_trace(50), make_trace(50)])  # mixed, repeated
    assert await _count(sql_store) == 51
    assert await _count(sql_store, spans) == 102
    assert await _usage_total(sql_store, "requests") == 51
    assert await _usage_total(sql_store, "cost_micros") == sum(
        make_trace(i).cost_micros for i in range(51)
    )


async def test_usage_rollups_agree_with_the_traces(sql_store: SqlTraceStore) -> None:
    records = [make_trace(i) for i in range(600)]
    memory = MemoryTraceStore()
    for start in range(0, 600, 130):
        await sql_store.write_batch(records[start : start + 130])
        await memory.write_batch(records[start : start + 130])
    query = UsageQuery(since=0, until=2e9, step=3600, group_by=("model", "key_id"))
    rows = await sql_store.usage(query)
    assert rows == await memory.usage(query)

    for row in rows:
        mine = [
            r
            for r in records
            if r.model_requested == row.group["model"]
            and r.key_id == row.group["key_id"]
            and int(r.started_at // 3600) * 3600 == row.bucket
        ]
        assert row.requests == len(mine)
        assert row.errors == sum(r.status == "error" for r in mine)
        assert row.prompt_tokens == sum(r.prompt_tokens for r in mine)
        assert row.completion_tokens == sum(r.completion_tokens for r in mine)
        assert row.cost_micros == sum(r.cost_micros for r in mine)
        assert row.cache_hits == sum(r.cache in ("hit-exact", "hit-semantic") for r in mine)
        assert row.latency_ms_avg == pytest.approx(sum(r.duration_ms for r in mine) / len(mine))
        latencies = sorted(r.duration_ms for r in mine)
        true_p50 = latencies[(len(latencies) - 1) // 2]
        assert row.latency_ms_p50 == pytest.approx(true_p50, rel=RELATIVE_ERROR)
        assert (row.latency_ms_min, row.latency_ms_max) == (latencies[0], latencies[-1])

    async with sql_store.engine.connect() as conn:
        by_model: dict[str, int] = dict(
            (
                await conn.execute(
                    select(traces.c.model_requested, func.count()).group_by(
                        traces.c.model_requested
                    )
                )
            ).all()
        )
    daily = await sql_store.usage(UsageQuery(since=0, until=2e9, step=86400, group_by=("model",)))
    assert {r.group["model"]: r.requests for r in daily} == by_model


async def test_usage_filters_and_time_window(sql_store: SqlTraceStore) -> None:
    records = [make_trace(i) for i in range(100)]
    await sql_store.write_batch(records)
    first_minute = min(int(r.started_at // 60) * 60 for r in records)
    query = UsageQuery(
        since=first_minute, until=first_minute + 60, step=60, filters={"end_user": "user-0"}
    )
    rows = await sql_store.usage(query)
    window = range(first_minute, first_minute + 60)
    expected = [r for r in records if r.end_user == "user-0" and int(r.started_at) in window]
    assert sum(row.requests for row in rows) == len(expected) > 0
    absent = await sql_store.usage(UsageQuery(since=0, until=2e9, filters={"team_id": ""}))
    assert sum(r.requests for r in absent) == sum(r.team_id is None for r in records)


async def test_deleting_a_trace_deletes_its_spans(sql_store: SqlTraceStore) -> None:
    await sql_store.write_batch([make_trace(1), make_trace(2)])
    async with sql_store.engine.begin() as conn:
        await conn.execute(delete(traces).where(traces.c.trace_id == "tr-000001"))
    assert await _count(sql_store, spans) == 2


async def test_refused_data_is_a_rejection_not_an_outage(sql_store: SqlTraceStore) -> None:
    with pytest.raises(RecordRejectedError):
        await sql_store.write_batch([make_trace(1), make_trace(2, cost_micros=2**70)])
    assert await _count(sql_store) == 0  # all or nothing


async def test_unreachable_database_is_an_outage() -> None:
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{dead_port()}/none")
    store = SqlTraceStore(engine)
    try:
        with pytest.raises(StoreUnavailableError):
            await store.write_batch([make_trace(1)])
        with pytest.raises(StoreUnavailableError):
            await store.get("tr-000001")
    finally:
        await dispose_engine(engine)


async def test_missing_tables_are_an_outage(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/unmigrated.db")
    try:
        with pytest.raises(StoreUnavailableError):
            await SqlTraceStore(engine).write_batch([make_trace(1)])
    finally:
        await dispose_engine(engine)


async def test_replicas_writing_the_same_traces_count_them_once(
    sql_store: SqlTraceStore, backend: Backend
) -> None:
    """Two gateway replicas replaying the same journal at once (separate engines)."""
    other = make_engine(backend.url)
    try:
        batches = [[make_trace(i) for i in range(start, start + 100)] for start in (0, 50)]
        await asyncio.gather(
            sql_store.write_batch(batches[0]),
            SqlTraceStore(other).write_batch(batches[1]),
            sql_store.write_batch(batches[1]),
            SqlTraceStore(other).write_batch(batches[0]),
        )
    finally:
        await dispose_engine(other)
    assert await _count(sql_store) == 150
    assert await _usage_total(sql_store, "requests") == 150
