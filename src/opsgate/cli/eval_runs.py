"""`opsgate eval run|list|show|compare`: eval runs from the command line.

`run` executes the eval file here, calling the gateway's OpenAI-compatible API with a service
key (`--key` or `$OPSGATE_API_KEY`), so every call is routed, traced, costed and budgeted, and
stores runs and results in the gateway's database (`--db`, default `$OPSGATE_DATABASE_URL`,
else the default SQLite file). A stored dataset (`dataset: {name, version}`) is read from that
database too, opened with `$OPSGATE_ENCRYPTION_KEYS`, and the read is audited. Exit codes:
0 passed, 1 a `--fail-under` gate failed, 2 bad input, 3 the run stopped early (cancelled,
interrupted, over budget; resume with `--resume`).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.audit import AuditLog
from opsgate.cli.client import DEFAULT_URL
from opsgate.config.schema import Settings
from opsgate.errors import OpsgateError
from opsgate.evals.client import ClientOptions, GatewayClient
from opsgate.evals.runs import (
    Comparison,
    DatasetReader,
    DatasetSource,
    EvalRunner,
    EvalSpec,
    EvalStore,
    GateResult,
    RunInfo,
    any_team,
    check,
    compare,
    junit,
    load_spec,
    open_dataset,
    open_stored,
    parse_spec,
    parse_thresholds,
    pinned,
)
from opsgate.evals.runs.record import FeedbackSink
from opsgate.evals.scorers import ScorerResources, build_scorer
from opsgate.feedback.datasets.service import READ_ROWS
from opsgate.feedback.datasets.store import DatasetStore
from opsgate.store import dispose_engine, make_engine
from opsgate.store.crypto import BodyCipher, load_keyring
from opsgate.store.migrate import upgrade

out = Console()
err = Console(stderr=True)

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="database URL (default: $OPSGATE_DATABASE_URL or ./opsgate.db)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _db(url: str | None) -> str:
    return url or os.environ.get("OPSGATE_DATABASE_URL") or Settings().database_url


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]eval[/]: {message}", highlight=False)
    return typer.Exit(code)


def _fmt(value: float | None, digits: int = 3) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def print_summary(run: RunInfo) -> None:
    summary = run.summary or {"targets": {}}
    table = Table("target", "scorer", "n", "mean", "95% CI", "failed",
                  title=f"{run.name} · {run.id} · {run.status}")  # fmt: skip
    for label, t in summary["targets"].items():
        for name, s in t["scorers"].items():
            ci = f"[{_fmt(s['low'])}, {_fmt(s['high'])}]"
            table.add_row(label, name, str(s["n"]), _fmt(s["mean"]), ci, str(s["failed"]))
    out.print(table)
    totals = Table("target", "rows", "failed", "cost (USD)", "tokens", "latency p50 (ms)")
    for label, t in summary["targets"].items():
        totals.add_row(label, str(t["rows"]), str(t["failed"]), f"{t['cost_usd']:.4f}",
                       str(t["tokens"]), _fmt(t["latency_p50_ms"], 1))  # fmt: skip
    out.print(totals)


def print_comparison(base: str, run: str, rows: list[Comparison]) -> None:
    table = Table("target", "scorer", "n", base, run, "diff", "95% CI", "p", "",
                  title=f"{run} vs {base} (paired bootstrap)")  # fmt: skip
    for c in rows:
        p = c.paired
        mark = "[bold]significant[/]" if p.n and p.significant else ""
        table.add_row(
            c.target_b if c.target_a == c.target_b else f"{c.target_a} → {c.target_b}",
            c.scorer, str(p.n), _fmt(p.mean_a), _fmt(p.mean_b), _fmt(p.diff),
            f"[{_fmt(p.low)}, {_fmt(p.high)}]", _fmt(p.p_value), mark,
        )  # fmt: skip
    out.print(table)


class _Bar:
    """A rich progress bar fed by the runner's `on_result`."""

    def __init__(self, total: int | None) -> None:
        self.progress = Progress(
            TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err, transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task("rows", total=total)

    def __call__(self, _result: object) -> None:
        self.progress.advance(self.task)


def _count(spec: EvalSpec) -> int | None:
    file = spec.dataset.file
    if file is None:
        return None
    with Path(file).open(encoding="utf-8", errors="replace") as handle:
        rows = sum(1 for line in handle if line.strip())
    return min(rows, spec.dataset.limit or rows) * len(spec.targets)


async def _execute(
    spec: EvalSpec, url: str, key: str, db: str, resume: str | None, bar: _Bar | None
) -> tuple[RunInfo, FeedbackSink | None]:
    await upgrade(db)
    engine = make_engine(db)
    client = GatewayClient(
        f"{url.rstrip('/')}/v1", key, ClientOptions(concurrency=spec.concurrency)
    )
    resources = ScorerResources(client=client, judge_model=spec.judge_model)
    scorers = []
    try:
        scorers = [build_scorer(s, resources) for s in spec.scorers]
        keyring = load_keyring(os.environ)
        cipher = BodyCipher(keyring) if keyring is not None else None
        store = EvalStore(engine)
        names = {s.name for s in scorers}
        if unknown := sorted(set(spec.record_scores) - names):
            raise _fail(f"record_scores names no scorer: {', '.join(unknown)}")
        sink = FeedbackSink(client, spec.record_scores) if spec.record_scores else None
        spec, dataset = await _dataset(spec, engine, cipher)
        runner = EvalRunner(spec, dataset, scorers, client, store,
                            cipher=cipher, sink=sink, on_result=bar)  # fmt: skip
        if resume is not None:
            found = await store.get(resume)
            if found is None:
                raise _fail(f"no run {resume} in {db}")
            run = found
        else:
            run = await runner.create(owner="cli")
            err.print(f"run [bold]{run.id}[/] started (resume with --resume {run.id})")
        return await runner.run(run), sink
    finally:
        for scorer in scorers:
            await scorer.aclose()
        await client.aclose()
        await dispose_engine(engine)


async def _dataset(
    spec: EvalSpec, engine: AsyncEngine, cipher: BodyCipher | None
) -> tuple[EvalSpec, DatasetSource]:
    """The run's rows: a file, or a stored dataset (its version pinned in the spec, the read
    audited as `cli`)."""
    if spec.dataset.name is None:
        return spec, open_dataset(spec.dataset)
    store = DatasetStore(engine)
    stored = await open_stored(spec.dataset, DatasetReader(store, cipher, any_team(store)))
    detail = {"version": stored.version, "eval": spec.name}
    await AuditLog(engine).append("cli", READ_ROWS, f"dataset:{stored.info.id}", detail)
    return spec.model_copy(update={"dataset": pinned(spec.dataset, stored)}), stored


async def _stored_spec(db: str, run_id: str) -> EvalSpec:
    engine = make_engine(db)
    try:
        found = await EvalStore(engine).get(run_id)
    finally:
        await dispose_engine(engine)
    if found is None:
        raise _fail(f"no run {run_id} in {db}")
    return parse_spec(found.spec, f"run {run_id}")


def run(
    spec_file: Annotated[Path | None, typer.Argument(help="the eval file (YAML)")] = None,
    url: Annotated[str, typer.Option(help="the gateway", envvar="OPSGATE_URL")] = DEFAULT_URL,
    key: Annotated[
        str | None, typer.Option(help="a service key for the gateway", envvar="OPSGATE_API_KEY")
    ] = None,
    db: DbOpt = None,
    resume: Annotated[str | None, typer.Option(help="continue this run")] = None,
    compare_to: Annotated[
        str | None, typer.Option("--compare", help="paired comparison with this run")
    ] = None,
    fail_under: Annotated[
        list[str] | None, typer.Option(help="NAME=MIN: exit 1 when a scorer's mean is lower")
    ] = None,
    junit_file: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run an eval file (or `--resume RUN_ID`) through the gateway and score it."""
    database = _db(db)
    try:
        thresholds = parse_thresholds(fail_under or [])
        if spec_file is None and resume is None:
            raise _fail("give an eval file, or --resume RUN_ID")
        if spec_file is not None:
            spec = load_spec(spec_file)
        else:
            assert resume is not None
            spec = asyncio.run(_stored_spec(database, resume))
        if not key:
            raise _fail("a service key is needed: --key or $OPSGATE_API_KEY")
        bar = None if as_json else _Bar(_count(spec))
        if bar is not None:
            bar.progress.start()
        try:
            finished, sink = asyncio.run(_execute(spec, url, key, database, resume, bar))
        except KeyboardInterrupt:
            message = "interrupted: the results so far are kept; resume with --resume"
            raise _fail(message, 3) from None
        finally:
            if bar is not None:
                bar.progress.stop()
        gate = check(finished.summary or {}, thresholds)
        comparison = asyncio.run(_compare(database, compare_to, finished.id)) if compare_to else []
    except OpsgateError as exc:
        raise _fail(exc.message) from None
    recorded = _recorded(sink)
    if junit_file is not None:
        junit_file.write_bytes(junit(finished.id, finished.name, finished.status, gate))
    if as_json:
        _print_json(finished, comparison, recorded, gate)
    else:
        print_summary(finished)
        if comparison:
            print_comparison(compare_to or "", finished.id, comparison)
    failed = [g for g in gate if not g.passed]
    for g in failed:
        err.print(f"[bold red]gate failed[/]: {g.target} {g.scorer} {_fmt(g.mean)} < {g.threshold}")
    if finished.status != "completed":
        raise _fail(f"run {finished.id} ended {finished.status}; resume with --resume", 3)
    if failed:
        raise typer.Exit(1)


def _recorded(sink: FeedbackSink | None) -> dict[str, Any] | None:
    if sink is None:
        return None
    if sink.refused:
        err.print(f"[yellow]{sink.refused} scores not recorded in the score store[/]: "
                  f"{sink.first_error}", highlight=False)  # fmt: skip
    return {"sent": sink.sent, "refused": sink.refused, "error": sink.first_error}


def _print_json(
    run: RunInfo,
    comparison: list[Comparison],
    recorded: dict[str, Any] | None,
    gate: list[GateResult],
) -> None:
    body: dict[str, Any] = run.as_json()
    body["compare"] = [c.as_json() for c in comparison]
    body["scores_recorded"] = recorded
    body["gate"] = [{"target": g.target, "scorer": g.scorer, "mean": g.mean,
                     "threshold": g.threshold, "passed": g.passed} for g in gate]  # fmt: skip
    out.print_json(json.dumps(body))


async def _compare(db: str, base: str | None, run_id: str) -> list[Comparison]:
    engine = make_engine(db)
    try:
        store = EvalStore(engine)
        for ref in (base, run_id):
            if ref is None or await store.get(ref) is None:
                raise _fail(f"no run {ref} in {db}")
        assert base is not None
        return await compare(store, base, run_id)
    finally:
        await dispose_engine(engine)


async def _runs(db: str, limit: int) -> list[RunInfo]:
    await upgrade(db)
    engine = make_engine(db)
    try:
        return await EvalStore(engine).runs(limit=limit)
    finally:
        await dispose_engine(engine)


async def _get(db: str, run_id: str) -> RunInfo | None:
    engine = make_engine(db)
    try:
        return await EvalStore(engine).get(run_id)
    finally:
        await dispose_engine(engine)


def list_runs(db: DbOpt = None, limit: int = 20, as_json: JsonOpt = False) -> None:
    """List eval runs, newest first."""
    runs = asyncio.run(_runs(_db(db), limit))
    if as_json:
        out.print_json(json.dumps([r.as_json() | {"spec": None} for r in runs]))
        return
    table = Table("id", "name", "status", "rows", "cost (USD)", "dataset")
    for r in runs:
        table.add_row(r.id, r.name, r.status, str(r.rows_done), f"{r.cost_micros / 1e6:.4f}",
                      r.dataset)  # fmt: skip
    out.print(table)


def show(run_id: str, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """A run's status and per-scorer results."""
    found = asyncio.run(_get(_db(db), run_id))
    if found is None:
        raise _fail(f"no run {run_id}")
    if as_json:
        out.print_json(json.dumps(found.as_json()))
    else:
        print_summary(found)


def compare_runs(base: str, run_id: str, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Paired comparison of RUN_ID against BASE, row by row (paired bootstrap)."""
    rows = asyncio.run(_compare(_db(db), base, run_id))
    if as_json:
        out.print_json(json.dumps([c.as_json() for c in rows]))
    else:
        print_comparison(base, run_id, rows)


def register_runs(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("list")(list_runs)
    app.command("show")(show)
    app.command("compare")(compare_runs)
