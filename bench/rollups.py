"""Rollups over many traces: load `rows` synthetic traces spread over 30 days into SQLite and
PostgreSQL, then time `SqlTraceStore.usage()` (and `list_traces` when the store has it).

Loading: traces are made in chunks of `CHUNK`, each over its own whole minutes. The first
`HONEST_CHUNKS` chunks go through `SqlTraceStore.write_batch` (batches of `HONEST_BATCH`), which
is how the gateway writes; when that measured rate would need more than `honest_limit_s` for all
rows, the remaining chunks are bulk-loaded with the same rows (`bench.bulkload`, checked
against `write_batch` on 500 traces first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import text

from bench.bulkload import PgLoader, SqliteLoader, check_same_rows, to_rows
from bench.dbs import Backend, sqlite_path
from bench.listing import ListProbe, list_probe
from bench.measure import Progress
from bench.querytiming import Timing, timed
from bench.synthetic import DAY, TraceFactory, spread
from opsgate.store import SqlTraceStore, UsageQuery, make_engine
from opsgate.store.db import dispose_engine
from opsgate.store.migrate import upgrade

CHUNK = 20_000
HONEST_CHUNKS = 2
HONEST_BATCH = 2_000
LOAD_LIMIT_S = 420.0
"""Stop loading (and say so) after this long: the run must end."""
ROLLUP_TARGET_MS = 200.0


@dataclass(slots=True)
class Loaded:
    backend: str
    traces: int = 0
    usage_rows: int = 0
    honest_records: int = 0
    honest_s: float = 0.0
    bulk_records: int = 0
    bulk_s: float = 0.0
    analyze_s: float = 0.0
    size_mb: float = 0.0

    @property
    def honest_rps(self) -> float:
        return self.honest_records / self.honest_s if self.honest_s else 0.0

    @property
    def bulk_rps(self) -> float:
        return self.bulk_records / self.bulk_s if self.bulk_s else 0.0


@dataclass(slots=True)
class RollupRun:
    rows: int
    prepare_s: float = 0.0
    """Generating the records and their table rows (shared by both backends)."""
    loaded: list[Loaded] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    list_note: str = ""


def queries(end: float) -> list[tuple[str, UsageQuery]]:
    hour = 3600
    return [
        ("model by day, 7 d", UsageQuery(end - 7 * DAY, end, 86_400, ("model",))),
        ("key by day, 30 d", UsageQuery(end - 30 * DAY, end, 86_400, ("key_id",))),
        ("team+model by hour, 1 d", UsageQuery(end - DAY, end, hour, ("team_id", "model"))),
        (
            "model by hour, 7 d, team = team-00",
            UsageQuery(end - 7 * DAY, end, hour, ("model",), {"team_id": "team-00"}),
        ),
        (
            "total by day, 30 d, end_user = user-0003",
            UsageQuery(end - 30 * DAY, end, 86_400, (), {"end_user": "user-0003"}),
        ),
    ]


async def _load(
    backends: Sequence[Backend],
    rows: int,
    end: float,
    run: RollupRun,
    honest_limit_s: float,
    progress: Progress | None,
) -> None:
    factory = TraceFactory(seed=30)
    stores = {b.name: SqlTraceStore(make_engine(b.url)) for b in backends}
    sqlite = next((SqliteLoader(sqlite_path(b)) for b in backends if b.name == "sqlite"), None)
    pg_url = next((b.url for b in backends if b.name == "postgresql"), None)
    pg = await PgLoader.open(pg_url) if pg_url else None
    began = time.perf_counter()
    try:
        for part in spread(rows, end, CHUNK):
            i, chunks, n = part.index, part.of, part.size
            if time.perf_counter() - began > LOAD_LIMIT_S:
                if progress:
                    progress(f"load stopped after {LOAD_LIMIT_S:g} s at chunk {i}/{chunks}")
                break
            t = time.perf_counter()
            records = part.records(factory)
            run.prepare_s += time.perf_counter() - t
            prepared = None
            for loaded in run.loaded:
                projected = rows / loaded.honest_rps if loaded.honest_rps else 0.0
                if i < HONEST_CHUNKS or projected <= honest_limit_s:
                    store = stores[loaded.backend]
                    t = time.perf_counter()
                    for k in range(0, n, HONEST_BATCH):
                        await store.write_batch(records[k : k + HONEST_BATCH])
                    loaded.honest_s += time.perf_counter() - t
                    loaded.honest_records += n
                    continue
                if prepared is None:
                    t = time.perf_counter()
                    prepared = to_rows(records)
                    run.prepare_s += time.perf_counter() - t
                t = time.perf_counter()
                if loaded.backend == "sqlite" and sqlite is not None:
                    sqlite.load(prepared)
                elif pg is not None:
                    await pg.load(prepared)
                loaded.bulk_s += time.perf_counter() - t
                loaded.bulk_records += n
            if progress and (i % 10 == 0 or i == chunks - 1):
                progress(f"loaded chunk {i + 1}/{chunks} ({(i + 1) * CHUNK:,} traces)")
        for loaded in run.loaded:
            if loaded.backend == "postgresql" and pg is not None:
                loaded.analyze_s = await pg.analyze()
    finally:
        if sqlite is not None:
            sqlite.close()
        if pg is not None:
            await pg.close()
        for store in stores.values():
            await dispose_engine(store.engine)


async def _count(store: SqlTraceStore, loaded: Loaded) -> None:
    async with store.engine.connect() as conn:
        loaded.traces = int((await conn.execute(text("SELECT count(*) FROM traces"))).scalar_one())
        usage = await conn.execute(text("SELECT count(*) FROM usage_minute"))
        loaded.usage_rows = int(usage.scalar_one())
        if store.engine.dialect.name == "postgresql":
            size = await conn.execute(text("SELECT pg_database_size(current_database())"))
            loaded.size_mb = int(size.scalar_one()) / 2**20


async def _time_queries(
    backend: Backend, end: float, repeats: int, run: RollupRun, probe: ListProbe | None
) -> None:
    store = SqlTraceStore(make_engine(backend.url))
    loaded = next(x for x in run.loaded if x.backend == backend.name)
    try:
        await _count(store, loaded)
        if backend.name == "sqlite":
            path = sqlite_path(backend)
            files = [path, path.with_name(path.name + "-wal")]
            loaded.size_mb = sum(f.stat().st_size for f in files if f.exists()) / 2**20
        for name, query in queries(end):

            async def one(query: UsageQuery = query) -> int:
                return len(await store.usage(query))

            run.timings.append(await timed(name, backend.name, repeats, one))
        if probe is not None:
            run.timings.extend(await probe.time(store, backend.name, end, repeats))
    finally:
        await dispose_engine(store.engine)


async def _run(
    backends: Sequence[Backend],
    rows: int,
    repeats: int,
    honest_limit_s: float,
    progress: Progress | None,
) -> RollupRun:
    run = RollupRun(rows, loaded=[Loaded(b.name) for b in backends])
    for backend in backends:
        await upgrade(backend.url)
    end = time.time() // 60 * 60
    await check_same_rows(TraceFactory(seed=3).between(500, end - DAY, end))
    await _load(backends, rows, end, run, honest_limit_s, progress)
    probe, run.list_note = list_probe()
    for backend in backends:
        if progress:
            progress(f"rollup queries on {backend.name}")
        await _time_queries(backend, end, repeats, run, probe)
    return run


def run_rollups(
    backends: Sequence[Backend],
    rows: int,
    repeats: int = 5,
    honest_limit_s: float = 60.0,
    progress: Progress | None = None,
) -> RollupRun:
    return asyncio.run(_run(backends, rows, repeats, honest_limit_s, progress))
