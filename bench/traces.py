"""`python -m bench traces`: the trace store's three benchmarks in one run.

1. writer: traces/s through `TraceWriter` and raw `SqlTraceStore.write_batch` (`bench.writerbench`)
2. gateway: the gateway with tracing off vs on, same fake upstream (`bench.tracegw`)
3. rollups: `usage()` (and the trace list) over `rows` synthetic traces (`bench.rollups`)

Every database is a throw-away: SQLite files in temp dirs, PostgreSQL databases of our own
(`opsgate_bench_<random>`) dropped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.dbs import backends, pg_available
from bench.measure import Progress, Settings
from bench.rollups import RollupRun, run_rollups
from bench.tracegw import TracingRun, run_tracing
from bench.writerbench import WriterResult, run_writer

PARTS = ("writer", "gateway", "rollups")


@dataclass(frozen=True, slots=True)
class TracesOptions:
    settings: Settings
    rows: int = 1_000_000
    """Synthetic traces for the rollups; 0 skips that part."""
    writer_records: int = 10_000
    """Records per writer round."""
    parts: Sequence[str] = PARTS
    with_pg: bool = True
    server: str = "uvicorn"
    honest_limit_s: float = 60.0
    """Load with write_batch while that would take at most this long for all rows."""


@dataclass(slots=True)
class TracesRun:
    options: TracesOptions
    notes: list[str] = field(default_factory=list)
    writer: list[WriterResult] = field(default_factory=list)
    tracing: TracingRun | None = None
    rollups: RollupRun | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per part."""


def run_traces(options: TracesOptions, progress: Progress | None = None) -> TracesRun:
    run = TracesRun(options)
    with_pg = options.with_pg
    if with_pg and (why := pg_available()) is not None:
        run.notes.append(f"PostgreSQL skipped: {why}")
        with_pg = False
    s = options.settings
    if "writer" in options.parts:
        began = time.monotonic()
        with backends(with_pg, "writer") as found:
            run.writer = run_writer(found, options.writer_records, s.rounds, progress)
        run.seconds["writer"] = time.monotonic() - began
    if "gateway" in options.parts:
        began = time.monotonic()
        with backends(with_pg, "gateway") as found:
            run.tracing = run_tracing(s, found, server=options.server, progress=progress)
        run.seconds["gateway"] = time.monotonic() - began
    if "rollups" in options.parts and options.rows > 0:
        began = time.monotonic()
        with backends(with_pg, "rollups") as found:
            run.rollups = run_rollups(
                found,
                options.rows,
                repeats=max(5, s.rounds),
                honest_limit_s=options.honest_limit_s,
                progress=progress,
            )
        run.seconds["rollups"] = time.monotonic() - began
    return run
