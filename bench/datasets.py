"""Datasets (`python -m bench datasets --rows 1000000`): building from scored traffic, exporting.

1. Load `rows` synthetic traces over 30 days (bench.bulkload: the store's own rows; every trace
   with a sealed prompt and answer, as `traces.store_bodies: full` keeps them) and scores on
   10 % of them (thumbs, 60 % up; a reviewer's correction on 1 % of the thumbs-down ones).
2. Time `DatasetService.create` (the real service on the real engine) for the issue's example,
   "the last 7 days of one model where thumbs=up, plus every corrected answer", and for a wider
   one (thumbs=up, every model, 30 days). The target is < 10 s from 1,000,000 traces.
3. Export a dataset of `EXPORT_ROWS` rows as openai-chat with PII redaction, consuming the
   stream as a client would, and sample the process's resident memory as it goes: it must stay
   flat (what grows is the duplicate check's 8-byte digests, about 1 MB per 10,000 lines).

SQLite always; PostgreSQL too unless `--no-pg`.
"""

from __future__ import annotations

import asyncio
import random
import resource
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson

from bench.bulkload import PgLoader, SqliteLoader, to_rows
from bench.dbs import Backend, backends, sqlite_path
from bench.report import Grid, grids_markdown
from bench.synthetic import TraceFactory, spread
from opsgate.access.principal import MASTER
from opsgate.audit import AuditLog
from opsgate.config.feedback import MetricConfig
from opsgate.feedback import SqlScoreStore
from opsgate.feedback.datasets.export import export_redactor
from opsgate.feedback.datasets.requests import DatasetCreate
from opsgate.feedback.datasets.service import DatasetService
from opsgate.feedback.scores import Score
from opsgate.feedback.scores_sql import COLUMNS as SCORE_COLUMNS
from opsgate.feedback.scores_sql import score_values
from opsgate.store.crypto import BodyCipher, Keyring
from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from opsgate.trace import TraceRecord

CHUNK = 20_000
EXPORT_ROWS = 100_000
TARGET_S = 10.0
MODEL = "gpt-4o-mini"
METRICS = {"thumbs": MetricConfig(type="boolean"), "rating": MetricConfig(type="float")}
Progress = Callable[[str], None]


@dataclass(slots=True)
class Build:
    label: str
    seconds: float
    matched: int
    added: int


@dataclass(slots=True)
class ExportRun:
    rows: int = 0
    seconds: float = 0.0
    bytes: int = 0
    tokens: int = 0
    redactions: int = 0
    rss_mb: list[tuple[int, float]] = field(default_factory=list)
    """(lines written, resident MB) samples."""
    peak_mb: float = 0.0


@dataclass(slots=True)
class BackendRun:
    backend: str
    load_s: float = 0.0
    scores: int = 0
    builds: list[Build] = field(default_factory=list)
    export: ExportRun = field(default_factory=ExportRun)


@dataclass(slots=True)
class DatasetsRun:
    rows: int
    runs: list[BackendRun] = field(default_factory=list)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class Traffic:
    """Bodies and scores for synthetic traces, sealed with the benchmark's key."""

    def __init__(self, cipher: BodyCipher, seed: int = 11) -> None:
        self.cipher = cipher
        self.rng = random.Random(seed)
        self.scores: list[tuple[Any, ...]] = []

    def fill(self, records: list[TraceRecord]) -> None:
        rng = self.rng
        for n, record in enumerate(records):
            user = f"customer{rng.randrange(10_000)}@example.com"
            request = {
                "model": record.model_requested,
                "messages": [
                    {"role": "system", "content": "You answer questions about orders."},
                    {
                        "role": "user",
                        "content": f"Where is order {record.trace_id[:10]}? Mail {user}.",
                    },
                ],
            }
            answer = f"Order {record.trace_id[:10]} ships in {n % 9 + 1} days; we wrote to {user}."
            record.request_body = self.cipher.seal(
                orjson.dumps(request), record.trace_id, "request_body"
            )
            record.response_body = self.cipher.seal(
                answer.encode(), record.trace_id, "response_body"
            )
            if rng.random() < 0.10:
                self._score(record, rng.random() < 0.6)

    def _score(self, record: TraceRecord, up: bool) -> None:
        correction = None
        if not up and self.rng.random() < 0.01:
            correction = {"role": "assistant", "content": "It shipped today."}
        score = Score(
            score_id=f"sc_{self.rng.getrandbits(96):024x}",
            metric="thumbs",
            type="boolean",
            source="reviewer" if correction else "end_user",
            created_at=record.started_at + 60,
            trace_id=record.trace_id,
            value=1.0 if up else 0.0,
            correction=correction,
            trace_started_at=record.started_at,
            model=record.model_requested,
            key_id=record.key_id,
            team_id=record.team_id,
            end_user=record.end_user,
        )
        self.scores.append(score_values(score))

    def take_scores(self) -> list[tuple[Any, ...]]:
        taken, self.scores = self.scores, []
        return taken


_SCORE_SQL = "INSERT INTO scores ({}) VALUES ({})".format(
    ", ".join(SCORE_COLUMNS), ", ".join("?" * len(SCORE_COLUMNS))
)


class ScoreLoader:
    """Scores beside the traces, in the same chunks: `sqlite3` or asyncpg's COPY."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None

    async def open(self) -> None:
        if self.backend.name == "sqlite":
            self._sqlite = sqlite3.connect(sqlite_path(self.backend), isolation_level=None)
        else:
            self._pg = await asyncpg.connect(self.backend.url)

    async def load(self, values: list[tuple[Any, ...]]) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("BEGIN")
            self._sqlite.executemany(_SCORE_SQL, values)
            self._sqlite.execute("COMMIT")
        else:
            await self._pg.copy_records_to_table(
                "scores", records=values, columns=list(SCORE_COLUMNS)
            )

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            await self._pg.execute("VACUUM ANALYZE scores")
            await self._pg.close()


async def _load(
    backend: Backend, rows: int, end: float, cipher: BodyCipher, progress: Progress
) -> int:
    await upgrade(backend.url)
    factory, traffic, scored = TraceFactory(seed=7), Traffic(cipher), 0
    sqlite = SqliteLoader(sqlite_path(backend)) if backend.name == "sqlite" else None
    pg = await PgLoader.open(backend.url) if sqlite is None else None
    scores = ScoreLoader(backend)
    await scores.open()
    try:
        for part in spread(rows, end, CHUNK):
            records = part.records(factory)
            traffic.fill(records)
            values = traffic.take_scores()
            scored += len(values)
            if sqlite is not None:
                sqlite.load(to_rows(records))
            else:
                assert pg is not None
                await pg.load(to_rows(records))
            await scores.load(values)
            if part.index % 10 == 0 or part.index == part.of - 1:
                progress(f"{backend.name}: {min(rows, (part.index + 1) * CHUNK):,} traces loaded")
        if pg is not None:
            await pg.analyze()
    finally:
        if sqlite is not None:
            sqlite.close()
        if pg is not None:
            await pg.close()
        await scores.close()
    return scored


async def _build(
    service: DatasetService, name: str, filters: list[dict[str, Any]], label: str
) -> Build:
    body = DatasetCreate.model_validate({"name": name, "from_traces": filters, "limit": 1_000_000})
    began = time.perf_counter()
    result = await service.create(MASTER, body, "bench")
    return Build(label, time.perf_counter() - began, result.matched, result.added)


async def _export(service: DatasetService, name: str, progress: Progress) -> ExportRun:
    run = ExportRun()
    _, export, _ = await service.export(
        MASTER, name, fmt="openai-chat", version=None, redact=True, metric=None, actor="bench"
    )
    run.rss_mb.append((0, _rss_mb()))
    began = time.perf_counter()
    next_sample = 10_000
    async for chunk in export.lines():
        run.bytes += len(chunk)
        run.rows += chunk.count(b"\n")
        if run.rows >= next_sample:
            run.rss_mb.append((run.rows, _rss_mb()))
            next_sample += 10_000
            progress(f"exported {run.rows:,} lines")
    run.seconds = time.perf_counter() - began
    run.rss_mb.append((run.rows, _rss_mb()))
    run.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run.tokens, run.redactions = export.report.tokens, export.report.redactions
    return run


async def _one(backend: Backend, rows: int, progress: Progress) -> BackendRun:
    cipher = BodyCipher(Keyring.generate())
    run = BackendRun(backend.name)
    now = time.time() // 60 * 60  # chunks cover whole minutes (their usage rows never collide)
    began = time.perf_counter()
    run.scores = await _load(backend, rows, now, cipher, progress)
    run.load_s = time.perf_counter() - began
    engine = make_engine(backend.url)
    try:
        service = DatasetService(
            engine,
            SqlScoreStore(engine),
            AuditLog(engine),
            cipher=lambda: cipher,
            redactor=lambda: export_redactor(None),
            metrics=lambda: METRICS,
            stores_bodies=lambda: True,
        )
        thumbs_up = [{"metric": "thumbs", "value": True}]
        example: list[dict[str, Any]] = [
            {"since": "7d", "model": MODEL, "scores": thumbs_up},
            {"model": MODEL, "corrected": True},
        ]
        progress(f"{backend.name}: building the issue's example dataset")
        run.builds.append(
            await _build(service, "example", example, f"7 d of {MODEL}, thumbs up + corrected")
        )
        progress(f"{backend.name}: building thumbs-up over 30 days")
        wide = [{"since": "30d", "scores": thumbs_up}]
        run.builds.append(await _build(service, "wide", wide, "30 d, every model, thumbs up"))
        progress(f"{backend.name}: building {EXPORT_ROWS:,} rows for the export")
        big = [{"since": "30d"}]
        body = DatasetCreate.model_validate(
            {"name": "big", "from_traces": big, "limit": EXPORT_ROWS}
        )
        began = time.perf_counter()
        made = await service.create(MASTER, body, "bench")
        run.builds.append(
            Build(
                f"30 d, first {EXPORT_ROWS:,} traces",
                time.perf_counter() - began,
                made.matched,
                made.added,
            )
        )
        run.export = await _export(service, "big", progress)
    finally:
        await dispose_engine(engine)
    return run


def run_datasets(rows: int, with_pg: bool, progress: Progress) -> DatasetsRun:
    result = DatasetsRun(rows)
    with backends(with_pg, "datasets") as found:
        for backend in found:
            result.runs.append(asyncio.run(_one(backend, rows, progress)))
    return result


def datasets_grids(run: DatasetsRun) -> list[Grid]:
    build = Grid(
        f"Building datasets from {run.rows:,} traces (target < {TARGET_S:.0f} s)",
        ("backend", "dataset", "traces matched", "rows added", "seconds", "rows/s"),
    )
    for r in run.runs:
        for b in r.builds:
            build.rows.append(
                (
                    r.backend,
                    b.label,
                    f"{b.matched:,}",
                    f"{b.added:,}",
                    f"{b.seconds:.2f}",
                    f"{b.added / b.seconds:,.0f}" if b.seconds else "-",
                )
            )
        build.notes.append(
            f"{r.backend}: {run.rows:,} traces with sealed bodies and {r.scores:,} scores loaded "
            f"in {r.load_s:.0f} s (bulk path, not timed against the target)"
        )
    export = Grid(
        "Exporting as openai-chat with PII redaction (streamed; resident memory sampled)",
        ("backend", "lines", "seconds", "lines/s", "MB written", "RSS start MB",
         "RSS at 10k", "RSS at end", "growth after 10k MB"),
    )  # fmt: skip
    for r in run.runs:
        e = r.export
        first = next((mb for n, mb in e.rss_mb if n >= 10_000), e.rss_mb[-1][1])
        export.rows.append(
            (
                r.backend,
                f"{e.rows:,}",
                f"{e.seconds:.1f}",
                f"{e.rows / e.seconds:,.0f}" if e.seconds else "-",
                f"{e.bytes / 2**20:.0f}",
                f"{e.rss_mb[0][1]:.0f}",
                f"{first:.0f}",
                f"{e.rss_mb[-1][1]:.0f}",
                f"{e.rss_mb[-1][1] - first:+.0f}",
            )
        )
        export.notes.append(
            f"{r.backend}: {e.tokens:,} tokens, {e.redactions:,} PII values replaced; RSS "
            "samples every 10,000 lines: " + ", ".join(f"{mb:.0f}" for _, mb in e.rss_mb)
        )
    return [build, export]


def main_datasets(args: Any, note: str, console: Any, progress: Progress) -> None:
    from bench.docs import update_section

    grids = datasets_grids(run_datasets(max(1, args.rows), not args.no_pg, progress))
    for grid in grids:
        grid.rich(console)
    if not args.no_docs:
        title = "## Datasets (`python -m bench datasets`)"
        update_section("datasets", "\n".join([title, "", note, *grids_markdown(grids)]))
