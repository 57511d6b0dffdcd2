"""Tables for `python -m bench traces`, for the terminal and for docs/benchmarks.md."""

from __future__ import annotations

from bench.querytiming import BUDGET_S, MIN_RUNS
from bench.report import Grid, ms, rps
from bench.rollups import CHUNK, HONEST_BATCH, HONEST_CHUNKS, ROLLUP_TARGET_MS, RollupRun
from bench.tracegw import OFF, SUSTAIN_CONCURRENCY, SUSTAIN_S, TracingRun
from bench.traces import TracesRun
from bench.writerbench import BATCH, WriterResult


def writer_grid(results: list[WriterResult], rounds: int) -> Grid:
    n = results[0].records if results else 0
    grid = Grid(
        f"Trace writer throughput: {n:,} fresh traces per round, medians of {rounds} rounds",
        (
            "backend",
            "TraceWriter traces/s",
            f"write_batch({BATCH}) traces/s",
            "writer/write_batch",
            "submit() µs",
            "overflowed",
            "spilled",
        ),
    )
    for r in results:
        share = r.writer_median / r.batch_median if r.batch_median else 0.0
        grid.rows.append(
            (
                r.backend,
                rps(r.writer_median),
                rps(r.batch_median),
                f"{share:.2f}",
                f"{r.submit_us:.2f}",
                str(r.overflowed),
                str(r.spilled),
            )
        )
    return grid


def tracing_grid(run: TracingRun) -> Grid:
    s = run.settings
    grid = Grid(
        f"Gateway with tracing off vs on (JSON, medians of {s.rounds} x {s.seconds:g} s, ms)",
        ("conc.", "traces", "req/s", "vs off", "p50", "added p50", "p99"),
    )
    for row in run.rows:
        off = row.off
        grid.rows.append(
            (str(row.concurrency), OFF, rps(off.rps), "1.00", ms(off.p50_ms), "", ms(off.p99_ms))
        )
        for name, got in row.on.items():
            grid.rows.append(
                (
                    str(row.concurrency),
                    name,
                    rps(got.rps),
                    f"{row.ratio(name):.2f}",
                    ms(got.p50_ms),
                    f"{row.added_p50_ms(name):+.2f}",
                    ms(got.p99_ms),
                )
            )
        errors = row.off.errors + sum(x.errors for x in row.on.values())
        if errors:
            grid.notes.append(f"c={row.concurrency}: {errors} errors")
    for name, counters in run.writer.items():
        seen = ", ".join(f"{k.removeprefix('opsgate_')} {v:,.0f}" for k, v in counters.items())
        stored = run.stored.get(name, 0)
        grid.notes.append(
            f"{name}, scraped at the end: {seen}; after a graceful stop (which drains the "
            f"queue) the database held {stored:,} traces"
        )
    return grid


def sustained_grid(run: TracingRun) -> Grid:
    grid = Grid(
        f"Does the writer keep up? {SUSTAIN_S} s of JSON load at c={SUSTAIN_CONCURRENCY} "
        "on each traced gateway",
        (
            "traces",
            "served req/s",
            "stored traces/s",
            "stored/served",
            "queue at end",
            "drain s",
            "spilled",
        ),
    )
    for x in run.sustained:
        share = x.written_per_s / x.rps if x.rps else 0.0
        grid.rows.append(
            (
                x.backend,
                rps(x.rps),
                rps(x.written_per_s),
                f"{share:.2f}",
                f"{x.queue_end:,.0f}",
                f"{x.drain_s:.1f}",
                f"{x.spilled:,.0f}",
            )
        )
    return grid


def load_grid(run: RollupRun) -> Grid:
    grid = Grid(
        f"Loading {run.rows:,} synthetic traces over 30 days",
        (
            "backend",
            "traces",
            "usage_minute rows",
            f"write_batch({HONEST_BATCH}) traces/s",
            "via write_batch",
            "projected all via write_batch s",
            "bulk traces/s",
            "via bulk",
            "VACUUM ANALYZE s",
            "DB MiB",
        ),
    )
    for x in run.loaded:
        projected = run.rows / x.honest_rps if x.honest_rps else 0.0
        grid.rows.append(
            (
                x.backend,
                f"{x.traces:,}",
                f"{x.usage_rows:,}",
                rps(x.honest_rps),
                f"{x.honest_records:,}",
                f"{projected:,.0f}",
                rps(x.bulk_rps) if x.bulk_records else "-",
                f"{x.bulk_records:,}",
                f"{x.analyze_s:.1f}" if x.analyze_s else "-",
                f"{x.size_mb:,.0f}",
            )
        )
    grid.notes.append(
        f"generating the traces and their rows took {run.prepare_s:.0f} s (once, shared)"
    )
    return grid


def query_grids(run: RollupRun) -> list[Grid]:
    backends = [x.backend for x in run.loaded]
    heads = ("query", "rows out", *(f"{b} ms" for b in backends))
    repeats = max((len(t.runs_ms) for t in run.timings), default=0)
    usage = Grid(
        f"usage() rollups over {run.rows:,} traces: median of up to {repeats} runs after a "
        f"warm-up (at least {MIN_RUNS}; a query stops repeating after {BUDGET_S:g} s)",
        (*heads, f"< {ROLLUP_TARGET_MS:g} ms"),
    )
    listing = Grid(f"Trace list (`list_traces`) over {run.rows:,} traces, medians", heads)
    names = list(dict.fromkeys(t.query for t in run.timings))
    for name in names:
        got = {t.backend: t for t in run.timings if t.query == name}
        cells = [ms(got[b].median_ms) if b in got else "-" for b in backends]
        rows_out = str(next(iter(got.values())).rows)
        if name.startswith("list:"):
            listing.rows.append((name.removeprefix("list: "), rows_out, *cells))
        else:
            met = all(t.median_ms < ROLLUP_TARGET_MS for t in got.values())
            usage.rows.append((name, rows_out, *cells, "yes" if met else "NO"))
    if run.list_note and not listing.rows:
        usage.notes.append(run.list_note)
    return [usage, listing] if listing.rows else [usage]


def verdicts(run: TracesRun) -> Grid:
    grid = Grid("Targets", ("target", "measured", "met"))
    if run.tracing:
        for name, measured, met in run.tracing.verdicts():
            grid.rows.append((name, measured, "yes" if met else "NO"))
    if run.rollups:
        for backend in (x.backend for x in run.rollups.loaded):
            timings = [
                t
                for t in run.rollups.timings
                if t.backend == backend and not t.query.startswith("list:")
            ]
            if not timings:
                continue
            worst = max(timings, key=lambda t: t.median_ms)
            grid.rows.append(
                (
                    f"usage() rollups ({backend}, {run.rollups.rows:,} traces) "
                    f"< {ROLLUP_TARGET_MS:g} ms",
                    f"slowest {worst.median_ms:,.0f} ms ({worst.query})",
                    "yes" if worst.median_ms < ROLLUP_TARGET_MS else "NO",
                )
            )
    return grid


def traces_grids(run: TracesRun) -> list[Grid]:
    grids: list[Grid] = []
    if run.writer:
        grids.append(writer_grid(run.writer, run.options.settings.rounds))
    if run.tracing:
        grids.append(tracing_grid(run.tracing))
        if run.tracing.sustained:
            grids.append(sustained_grid(run.tracing))
    if run.rollups:
        grids += [load_grid(run.rollups), *query_grids(run.rollups)]
    grids.append(verdicts(run))
    if run.notes:
        grids[-1].notes.extend(run.notes)
    return grids


def method(run: TracesRun) -> str:
    o = run.options
    s = o.settings
    writer = (
        f"- **Writer**: per backend, {s.rounds} rounds of {o.writer_records:,} fresh synthetic "
        "traces (`bench.synthetic`: uuid4-hex ids, 1-3 spans, ~20 models on ~5 deployments, "
        "~50 keys in ~10 teams, ~500 end users, Zipf-like popularity) submitted to a new "
        "`TraceWriter` (queue 10,000, batch 200: the defaults) as fast as it takes them (the "
        "producer yields after every 200 and waits while the queue is full, so nothing "
        "overflows), timed from the first `submit` to `flush()` returning; then "
        f"`SqlTraceStore.write_batch` with {BATCH} traces per call, back to back. SQLite is a "
        "temp file (WAL, synchronous=NORMAL, as `make_engine` sets it); PostgreSQL is a "
        "database created for the run on 127.0.0.1 and dropped after."
    )
    gateway = (
        "- **Gateway**: three gateways (uvicorn, 1 worker each) on one fake upstream: "
        "`traces: {enabled: false}`, tracing into SQLite, tracing into PostgreSQL; wrk, "
        f"{s.warmup:g} s warm-up, {s.rounds} interleaved rounds of {s.seconds:g} s, medians. "
        f"Then each traced gateway alone gets {SUSTAIN_S} s at c={SUSTAIN_CONCURRENCY} with "
        "`/metrics` scraped before and after (stored traces/s = growth of "
        "`opsgate_traces_written_total`; drain = time until `opsgate_trace_queue_depth` is 0 "
        "again). Traces are counted in each database after a graceful stop."
    )
    rollups = (
        f"- **Rollups**: {o.rows:,} traces uniformly over 30 days, made in chunks of "
        f"{CHUNK:,} that each cover whole minutes. The first {HONEST_CHUNKS} chunks go through "
        f"`SqlTraceStore.write_batch` ({HONEST_BATCH:,} per call); when that measured rate "
        f"would need more than {o.honest_limit_s:g} s for all rows (`--honest-limit`), the "
        "rest is bulk-loaded: the same rows, made by the store's own `codec.trace_values` / "
        "`codec.span_values` and `usage.aggregate` / `usage.fold`, inserted with one "
        "`sqlite3` `executemany` per table and chunk (synchronous=OFF while loading) or "
        "asyncpg binary `COPY` (`bench.bulkload`; hour and day rows, which chunks share, are "
        "upserted with the store's own statement); each run first checks that 500 traces give "
        "identical rows in every table both ways. PostgreSQL then gets `VACUUM ANALYZE` "
        "(what autovacuum would do); SQLite gets nothing (opsgate runs no ANALYZE). A query "
        "is timed through `SqlTraceStore.usage()` / `list_traces()` end to end (SQL plus "
        "building the result objects): one warm-up run, then the median of the timed runs."
    )
    return "\n".join(["Method:", "", writer, gateway, rollups])


def traces_markdown(run: TracesRun, note: str) -> str:
    parts = ["## Traces: writer, tracing overhead, rollups (`python -m bench traces`)"]
    parts += [note, method(run)]
    for grid in traces_grids(run):
        parts.append(f"### {grid.title}")
        parts.append(grid.markdown())
        if grid.notes:
            parts.append("\n".join(f"- {n}" for n in grid.notes))
    took = ", ".join(f"{k} {v:.0f} s" for k, v in run.seconds.items())
    parts.append(f"Wall time: {took}.")
    return "\n\n".join(parts)
