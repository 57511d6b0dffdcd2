"""Rollups read day, hour and minute tables (`usage.plan`) and still answer exactly.

The in-memory store rolls up per-minute buckets directly, so it is the reference: for any time
window, bucket width, grouping and filter, the SQL store must give the same rows.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from opsgate.store import MemoryTraceStore, SqlTraceStore, UsageQuery
from opsgate.store.tables.traces import (
    usage_day,
    usage_day_keys,
    usage_day_users,
    usage_hour,
    usage_hour_keys,
    usage_hour_users,
    usage_minute,
)
from opsgate.store.usage import DIMENSIONS, combine
from opsgate.store.usage_levels import plan
from tests.store.conftest import make_trace

DAY = 86_400
T0 = 1_700_006_400  # a UTC midnight


@given(
    since=st.integers(T0 - 3 * DAY, T0 + 3 * DAY),
    length=st.integers(0, 9 * DAY),
    step_minutes=st.sampled_from([1, 5, 60, 120, 1440, 2880, 10080]),
    by_user=st.booleans(),
)
def test_plan_covers_every_minute_once(
    since: int, length: int, step_minutes: int, by_user: bool
) -> None:
    query = UsageQuery(
        since=since + 0.5,
        until=since + length + 0.25,
        step=step_minutes * 60,
        group_by=("end_user",) if by_user else (),
    )
    segments = plan(query)
    lo, hi = since // 60 * 60, -(-(since + length + 1) // 60) * 60
    covered = sorted((s.start, s.end) for s in segments)
    assert all(a < b for a, b in covered)
    edges = [lo] + [b for _, b in covered]
    assert [a for a, _ in covered] == edges[:-1]  # contiguous, no overlap
    assert (covered[0][0], covered[-1][1]) == (lo, hi) if covered else lo >= hi
    for segment in segments:
        assert query.step % segment.level.seconds == 0
        assert segment.start % segment.level.seconds == segment.end % segment.level.seconds == 0
        assert "end_user" in segment.level.dims or not by_user
        assert by_user or segment.level.dims != ("end_user",)


def test_plan_reads_whole_days_from_the_day_table() -> None:
    query = UsageQuery(since=T0 - 90, until=T0 + 3 * DAY + 3700, step=DAY, group_by=("model",))
    tables = [(s.level.table.name, s.start, s.end) for s in plan(query)]
    assert tables == [
        ("usage_minute", T0 - 120, T0),
        ("usage_day", T0, T0 + 3 * DAY),
        ("usage_hour", T0 + 3 * DAY, T0 + 3 * DAY + 3600),
        ("usage_minute", T0 + 3 * DAY + 3600, T0 + 3 * DAY + 3720),
    ]
    hourly = UsageQuery(since=T0, until=T0 + 2 * DAY, step=3600, filters={"status": "error"})
    assert [s.level.table.name for s in plan(hourly)] == ["usage_hour"]
    totals = UsageQuery(since=T0, until=T0 + 2 * DAY, step=3600, filters={"team_id": "t"})
    assert [s.level.table.name for s in plan(totals)] == ["usage_hour_keys"]
    by_key = UsageQuery(since=T0, until=T0 + 2 * DAY, step=DAY, group_by=("key_id",))
    assert [s.level.table.name for s in plan(by_key)] == ["usage_day_keys"]
    per_user = UsageQuery(since=T0, until=T0 + 2 * DAY, step=DAY, filters={"end_user": "u"})
    assert [s.level.table.name for s in plan(per_user)] == ["usage_day_users"]
    user_and_key = UsageQuery(
        since=T0, until=T0 + 2 * DAY, step=DAY, group_by=("end_user",), filters={"key_id": "k"}
    )
    assert [s.level.table.name for s in plan(user_and_key)] == ["usage_minute"]


def _spread(count: int, seed: int) -> list:  # type: ignore[type-arg]
    rng = random.Random(seed)
    records = []
    for i in range(count):
        record = make_trace(i)
        record.started_at = T0 - DAY + rng.random() * 4 * DAY
        records.append(record)
    return records


async def test_sql_rollups_match_the_minute_reference(sql_store: SqlTraceStore) -> None:
    records = _spread(1500, seed=7)
    memory = MemoryTraceStore()
    for start in range(0, len(records), 400):
        await sql_store.write_batch(records[start : start + 400])
        await memory.write_batch(records[start : start + 400])
    rng = random.Random(11)
    for _ in range(40):
        since = T0 - DAY + rng.randrange(0, 2 * DAY)
        until = since + rng.randrange(60, 3 * DAY)
        group_by = tuple(rng.sample(DIMENSIONS, rng.randrange(0, 3)))
        filters = rng.choice([{}, {}, {"model": "gpt-4o-mini"}, {"team_id": "team-1"}])
        query = UsageQuery(
            since=since + rng.random() * 60,
            until=until + rng.random() * 60,
            step=rng.choice([60, 3600, 7200, DAY, 2 * DAY]),
            group_by=group_by,
            filters=filters,
        )
        assert await sql_store.usage(query) == await memory.usage(query), query


async def test_every_usage_table_holds_the_same_totals(sql_store: SqlTraceStore) -> None:
    records = _spread(300, seed=3)
    await sql_store.write_batch(records)
    await sql_store.write_batch(records[:100])  # a replay adds nothing anywhere
    async with sql_store.engine.connect() as conn:
        for table in (
            usage_minute,
            usage_hour,
            usage_day,
            usage_hour_keys,
            usage_day_keys,
            usage_hour_users,
            usage_day_users,
        ):
            total = select(func.sum(table.c.requests), func.sum(table.c.cost_micros))
            requests, cost = (await conn.execute(total)).one()
            assert (requests, cost) == (len(records), sum(r.cost_micros for r in records))


@pytest.mark.parametrize("step", [3600, DAY])
async def test_empty_window_has_no_rows(sql_store: SqlTraceStore, step: int) -> None:
    await sql_store.write_batch(_spread(20, seed=1))
    assert await sql_store.usage(UsageQuery(since=T0, until=T0, step=step)) == []


async def test_combined_buckets_equal_the_total_query(sql_store: SqlTraceStore) -> None:
    await sql_store.write_batch(_spread(400, seed=5))
    window = {"since": T0 - DAY + 30, "until": T0 + 2 * DAY + 90}
    buckets = await sql_store.usage(UsageQuery(**window, step=3600))  # type: ignore[arg-type]
    (total,) = await sql_store.usage(UsageQuery(**window, step=DAY * 10**6))  # type: ignore[arg-type]
    combined = combine(buckets, bucket=total.bucket)
    assert combined is not None and combine([]) is None
    exact = ("requests", "errors", "cost_micros", "cost_saved_micros", "ttft_count", "latency")
    assert {f: getattr(combined, f) for f in exact} == {f: getattr(total, f) for f in exact}
    assert combined.latency_ms_p95 == total.latency_ms_p95
    assert combined.ttft_ms_avg == pytest.approx(total.ttft_ms_avg)
    assert combined.latency_ms_avg == pytest.approx(total.latency_ms_avg)
