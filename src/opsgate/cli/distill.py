"""`opsgate tuning distill ...` (also `opsgate tune distill`): a teacher model's answers train a
small student, then the two are compared, through the running gateway.

```
opsgate tuning distill --teacher gpt-4o --dataset support@3 --student /models/smol \
    --adapter support-smol [--filter refusal --filter '{"type": "length", "max": 400}'] \
    [--scorer exact] [--epochs 3] [--cpu-hour-usd 0.05] [--no-wait]
opsgate tuning distill --teacher gpt-4o --topic "refunds" --topic "invoices" --per-topic 20 ...
opsgate tuning distillation DIST_ID      # the stage, the counts, the comparison table
opsgate tuning distillations
```

Starting returns at once; without `--no-wait` the command follows the run (inputs, teacher,
dataset, training, comparing) and prints the comparison table: quality, cost per 1k requests,
latency.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console

from opsgate.cli.client import DEFAULT_URL, UrlOpt, call, get_json
from opsgate.cli.tables import Column, print_table
from opsgate.cli.traces import JsonOpt
from opsgate.cli.tuning import tuning_app

BASE = "/admin/v1/tuning/distill"
out = Console()
err = Console(stderr=True)
tune_app = typer.Typer(help="Alias of `tuning` for distillation.", no_args_is_help=True)
Specs = Annotated[list[str] | None, typer.Option(help="a scorer: a name or a JSON object")]


def register(app: typer.Typer) -> None:
    tuning_app.command("distill")(distill)
    tuning_app.command("distillation")(show)
    tuning_app.command("distillations")(listed)
    tune_app.command("distill")(distill)
    app.add_typer(tune_app, name="tune", hidden=True)


def _spec(raw: str) -> Any:
    return json.loads(raw) if raw.lstrip().startswith("{") else raw


def _dataset(raw: str) -> tuple[str, int | None]:
    name, _, version = raw.partition("@")
    if version and not version.isdigit():
        raise typer.BadParameter(
            f"{raw!r}: the version after @ is a number", param_hint="--dataset"
        )
    return name, int(version) if version else None


def distill(
    teacher: Annotated[str, typer.Option(help="a model the gateway serves")],
    student: Annotated[str, typer.Option(help="base model folder of the student")],
    adapter: Annotated[str, typer.Option(help="the student adapter's name")],
    dataset: Annotated[str | None, typer.Option(help="NAME or NAME@VERSION: the inputs")] = None,
    topic: Annotated[
        list[str] | None, typer.Option(help="a seed topic the teacher writes inputs about")
    ] = None,
    per_topic: Annotated[int, typer.Option(help="inputs written per topic")] = 10,
    into: Annotated[str | None, typer.Option(help="distilled dataset's name")] = None,
    filter_: Annotated[list[str] | None, typer.Option("--filter", help="keep-filter")] = None,
    scorer: Specs = None,
    held_out: Annotated[float, typer.Option(help="share of inputs kept to compare")] = 0.2,
    epochs: int = 3,
    rank: int = 8,
    learning_rate: Annotated[float, typer.Option("--lr")] = 5e-3,
    batch_size: int = 4,
    target_module: Annotated[list[str] | None, typer.Option(help="modules to adapt")] = None,
    max_new_tokens: int = 64,
    concurrency: Annotated[int, typer.Option(help="teacher calls in flight")] = 4,
    cpu_hour_usd: Annotated[float, typer.Option(help="assumed price of a CPU hour")] = 0.05,
    wait: Annotated[bool, typer.Option(help="follow the run and print the table")] = True,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Distil a teacher model into a student adapter and compare the two."""
    if (dataset is None) == (not topic):
        raise typer.BadParameter("give --dataset or --topic (one of them)")
    settings: dict[str, Any] = {"epochs": epochs, "rank": rank, "learning_rate": learning_rate,
                                "batch_size": batch_size}  # fmt: skip
    if target_module:
        settings["target_modules"] = target_module
    body: dict[str, Any] = {
        "teacher": teacher, "student": student,
        "adapter": adapter, "held_out": held_out, "settings": settings,
        "max_new_tokens": max_new_tokens, "concurrency": concurrency, "cpu_hour_usd": cpu_hour_usd,
    }  # fmt: skip
    if dataset is not None:
        body["dataset"], body["dataset_version"] = _dataset(dataset)
    else:
        body["topics"], body["per_topic"] = topic, per_topic
    if into:
        body["into"] = into
    if filter_ is not None:
        body["filters"] = [_spec(f) for f in filter_ if f]
    if scorer:
        body["scorers"] = [_spec(s) for s in scorer]
    record = call(url, "POST", BASE, body, timeout=300)
    if wait:
        record = _follow(url, record)
    if as_json:
        typer.echo(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        _print(record)
    if record["status"] == "failed":
        raise typer.Exit(1)


def _follow(url: str, record: dict[str, Any], poll: float = 1.0) -> dict[str, Any]:
    stage = None
    while record["status"] == "running":
        if record["stage"] != stage:
            stage = record["stage"]
            err.print(f"{record['id']}: {stage}", highlight=False)
        time.sleep(poll)
        record = get_json(url, f"{BASE}/{record['id']}")
    return record


def show(distill_id: str, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """One distillation: its stage, counts and comparison table."""
    record = get_json(url, f"{BASE}/{distill_id}")
    if as_json:
        typer.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    _print(record)


def listed(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Distillations, newest first."""
    rows = get_json(url, BASE)["data"]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    columns = [Column("id"), Column("status"), Column("stage"), Column("teacher"),
               Column("adapter"), Column("error", 2, wrap=True)]  # fmt: skip
    print_table(out, columns, [[r["id"], r["status"], r["stage"], r["teacher"], r["adapter"],
                                r.get("error") or ""] for r in rows])  # fmt: skip


def _print(record: dict[str, Any]) -> None:
    out.print(f"{record['id']}  {record['status']}  (stage {record['stage']})", highlight=False)
    inputs = record.get("inputs")
    if inputs:
        out.print(
            f"inputs: {inputs['total']} ({inputs['train']} to train on, {inputs['held_out']} "
            "held out)",
            highlight=False,
        )
        for line in inputs.get("errors", []):
            out.print(f"  {line}", highlight=False)
    calls = record.get("teacher_calls")
    if calls:
        out.print(
            f"teacher {record['teacher']}: {calls['calls']} calls, {calls['failed']} failed; "
            f"kept {calls['kept']}, dropped {calls['dropped']} {calls['dropped_by'] or ''}",
            highlight=False,
        )
        for line in calls["errors"]:
            out.print(f"  {line}", highlight=False)
    if record.get("dataset"):
        ds = record["dataset"]
        out.print(f"dataset {ds['name']}@{ds['version']} ({ds['rows']} rows)", highlight=False)
    if record.get("job_id"):
        out.print(f"job {record['job_id']} -> adapter {record['adapter']}", highlight=False)
    if record.get("error"):
        err.print(f"[bold red]failed[/]: {record['error']}", highlight=False)
    if record.get("comparison"):
        print_comparison(record["comparison"])


def print_comparison(table: dict[str, Any]) -> None:
    scorers = table["scorers"]
    columns = [Column("model"), Column("role"), *(Column(s, justify="right") for s in scorers),
               Column("$/1k req", justify="right"), Column("p50 ms", justify="right"),
               Column("p95 ms", justify="right")]  # fmt: skip
    rows = []
    for row in table["rows"]:
        quality = [_number(row["quality"].get(s)) for s in scorers]
        latency = row["latency_ms"]
        rows.append([row["name"], row["role"], *quality, f"{row['cost_per_1k_usd']:.6f}",
                     f"{latency['median']:.1f}", f"{latency['p95']:.1f}"])  # fmt: skip
    title = f"{table['held_out']} held-out inputs, quality against the {table['reference']}"
    print_table(out, columns, rows, title=title)
    hour = table["assumptions"]["cpu_hour_usd"]
    out.print(f"student cost assumes ${hour} per CPU hour", highlight=False)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
