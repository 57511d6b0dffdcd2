"""Latency percentiles through the store, on SQLite and PostgreSQL: rollups that read minute,
hour and day tables give percentiles within 1% of the traces' own, clamped to their exact min
and max; and migration v0007 converts old histogram rows (and back)."""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest
from alembic import command
from sqlalchemy import Column, MetaData, Table, inspect, text
from sqlalchemy.engine import Connection

from opsgate.store import MemoryTraceStore, SqlTraceStore, UsageQuery, dispose_engine, make_engine
from opsgate.store.histogram import COMPACT_AT, RELATIVE_ERROR, bin_of
from opsgate.store.migrate import alembic_config
from opsgate.store.usage_levels import plan
from opsgate.trace import TraceRecord
from tests.store.conftest import Backend, make_trace

DAY = 86_400
T0 = 1_700_006_400  # a UTC midnight


def _traces(count: int, seed: int) -> list[TraceRecord]:
    """Traces over three days with latencies from 0.1 ms to an hour, most near 505 ms."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        record = make_trace(i)
        record.started_at = T0 - DAY + rng.random() * 3 * DAY
        shape = rng.random()
        if shape < 0.8:
            record.duration_ms = rng.lognormvariate(math.log(505), 0.05)
        elif shape < 0.95:
            record.duration_ms = rng.uniform(0.1, 50)
        else:
            record.duration_ms = rng.uniform(1_000, 3_600_000)
        records.append(record)
    return records


def _true(records: list[TraceRecord], q: float) -> float:
    return float(np.quantile([r.duration_ms for r in records], q, method="lower"))


FIELD = {"model": "model_requested"}
QUERIES = [
    # (since, until, step, group_by): whole days, ragged hours and minutes at both ends
    (T0 - DAY + 90.5, T0 + 2 * DAY - 3000.25, DAY * 10**6, ()),
    (T0 - 3 * 3600 + 30, T0 + DAY + 7300, DAY, ("model",)),
    (T0 + 1800, T0 + 5 * 3600 + 45, 3600, ("team_id",)),
    (T0 + 600, T0 + 1500, 60, ()),
    (T0 - DAY, T0 + 2 * DAY, 7200, ("key_id",)),
]


@pytest.mark.parametrize("window", QUERIES, ids=["total", "by-day", "by-hour", "by-minute", "2h"])
async def test_percentiles_within_the_error_across_rollup_levels(
    sql_store: SqlTraceStore, window: tuple[float, float, int, tuple[str, ...]]
) -> None:
    records = _traces(2400, seed=13)
    memory = MemoryTraceStore()
    for start in range(0, len(records), 300):  # batches: hour and day rows merge in SQL
        await sql_store.write_batch(records[start : start + 300])
        await memory.write_batch(records[start : start + 300])
    since, until, step, group_by = window
    query = UsageQuery(since, until, step, group_by)  # type: ignore[arg-type]
    if step > DAY:
        assert len({s.level.seconds for s in plan(query)}) == 3  # minute, hour and day rows
    rows = await sql_store.usage(query)
    reference = await memory.usage(query)
    assert rows and len(rows) == len(reference)
    for got, want in zip(rows, reference, strict=True):  # float sums may differ in the last bit
        assert got.latency_ms_sum == pytest.approx(want.latency_ms_sum, rel=1e-12)
        assert dataclasses.replace(got, latency_ms_sum=0, latency_ms_avg=0) == dataclasses.replace(
            want, latency_ms_sum=0, latency_ms_avg=0
        )
    for row in rows:
        mine = [
            r
            for r in records
            if since // 60 * 60 <= r.started_at < math.ceil(until / 60) * 60  # whole minutes
            and int(r.started_at // 60 * 60) - int(r.started_at // 60 * 60) % step == row.bucket
            and all(
                str(getattr(r, FIELD.get(dim, dim)) or "") == row.group[dim] for dim in group_by
            )
        ]
        assert row.requests == len(mine)
        latencies = sorted(r.duration_ms for r in mine)
        assert (row.latency_ms_min, row.latency_ms_max) == (latencies[0], latencies[-1])
        for q, got in ((0.5, row.latency_ms_p50), (0.95, row.latency_ms_p95)):
            assert got == pytest.approx(_true(mine, q), rel=RELATIVE_ERROR)
        assert row.latency_ms_p99 == pytest.approx(_true(mine, 0.99), rel=RELATIVE_ERROR)
        assert row.latency_ms_min <= row.latency_ms_p50 <= row.latency_ms_p95  # type: ignore[operator]
        assert row.latency_ms_p95 <= row.latency_ms_p99 <= row.latency_ms_max  # type: ignore[operator]


async def test_a_replayed_batch_does_not_change_the_sketch(sql_store: SqlTraceStore) -> None:
    records = _traces(200, seed=5)
    query = UsageQuery(T0 - DAY, T0 + 2 * DAY, DAY * 10**6)
    await sql_store.write_batch(records)
    (before,) = await sql_store.usage(query)
    await sql_store.write_batch(records[:50])
    assert await sql_store.usage(query) == [before]
    assert before.latency.count == 200


# -- migration v0007 --------------------------------------------------------------------------

OLD_TABLES = {
    "usage_minute": ("minute", ["model", "deployment", "key_id", "team_id", "end_user", "status"]),
    "usage_hour": ("hour", ["model", "deployment", "key_id", "team_id", "status"]),
    "usage_day": ("day", ["model", "deployment", "key_id", "team_id", "status"]),
    "usage_hour_keys": ("hour", ["key_id", "team_id"]),
    "usage_day_keys": ("day", ["key_id", "team_id"]),
    "usage_hour_users": ("hour", ["end_user"]),
    "usage_day_users": ("day", ["end_user"]),
}
OLD_COUNTS = {"lat_b00": 2, "lat_b18": 10, "lat_b19": 5}
"""[0, 1) ms twice, [362, 512) ms ten times, [512, 724) ms five times (buckets grew by sqrt 2)."""


def _migrate(conn: Connection, target: str, *, down: bool = False) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    (command.downgrade if down else command.upgrade)(config, target)


def _insert_old_rows(conn: Connection) -> None:
    for name, (period, dims) in OLD_TABLES.items():
        columns = {c["name"] for c in inspect(conn).get_columns(name)}
        assert "lat_b18" in columns and "latency_sketch" not in columns
        row = {period: T0, **dict.fromkeys(dims, "x"), "requests": 17, **OLD_COUNTS}
        row["latency_ms_sum"] = 2 * 0.5 + 10 * 450.0 + 5 * 600.0
        table = Table(name, MetaData(), *(Column(c) for c in row))
        conn.execute(table.insert(), [row])


def _read(conn: Connection, sql: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(text(sql))]


async def test_v0007_converts_old_histogram_rows_and_back(empty_backend: Backend) -> None:
    engine = make_engine(empty_backend.url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "v0006_erasures")
            await conn.run_sync(_insert_old_rows)
            await conn.run_sync(_migrate, "v0007_latency")
            for name in OLD_TABLES:
                got = await conn.run_sync(
                    _read,
                    f"SELECT latency_sketch, latency_ms_min, latency_ms_max FROM {name}",
                )
                middles = [
                    bin_of(0.5),
                    bin_of(math.sqrt(2**8.5 * 2**9)),
                    bin_of(math.sqrt(2**9 * 2**9.5)),
                ]
                sketch = ",".join(
                    f"{b * 10**12 + n}" for b, n in zip(middles, (2, 10, 5), strict=True)
                )
                assert got == [(sketch, 0.0, 2**9.5)], name
        store = SqlTraceStore(engine)
        (row,) = await store.usage(UsageQuery(T0, T0 + DAY, DAY))
        assert row.requests == 17 and row.latency.count == 17
        assert row.latency_ms_p50 == pytest.approx(math.sqrt(2**8.5 * 2**9), rel=RELATIVE_ERROR)
        assert row.latency_ms_max == 2**9.5
        async with engine.begin() as conn:
            await conn.run_sync(_migrate, "v0006_erasures", down=True)
            for name in OLD_TABLES:
                got = await conn.run_sync(
                    _read, f"SELECT {', '.join(OLD_COUNTS)}, lat_b17, lat_b20 FROM {name}"
                )
                assert got == [(*OLD_COUNTS.values(), 0, 0)], name
    finally:
        await dispose_engine(engine)


async def test_stored_sketches_are_appended_then_compacted(sql_store: SqlTraceStore) -> None:
    """A day row takes each batch's few bins by appending them until its text is long, then
    merges bin by bin: the text stays bounded and the answer is the same."""
    records = _traces(3000, seed=21)
    for record in records:  # one key and team in one day: one usage_day_keys row
        record.started_at = T0 + (record.started_at - T0) % 3600
        record.key_id, record.team_id = "k", "t"
    memory = MemoryTraceStore()
    appended = 0
    for start in range(0, len(records), 20):
        batch = records[start : start + 20]
        appended += len({bin_of(r.duration_ms) for r in batch})
        await sql_store.write_batch(batch)
        await memory.write_batch(batch)
    async with sql_store.engine.connect() as conn:
        (stored,) = (await conn.execute(text("SELECT latency_sketch FROM usage_day_keys"))).one()
    entries = stored.count(",") + 1
    assert appended > 2 * COMPACT_AT // 17  # never merging would have kept them all
    assert entries < appended and len(stored) < COMPACT_AT + 20 * 17
    query = UsageQuery(T0, T0 + DAY, DAY, ("key_id",))
    (got,), (want,) = await sql_store.usage(query), await memory.usage(query)
    assert got.latency == want.latency and got.latency.count == 3000
