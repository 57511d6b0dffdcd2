"""`opsgate tuning ...`: LoRA jobs and the adapter registry through the running gateway.

```
opsgate tuning create --dataset support-good --base /models/llama --adapter support-a [--epochs 3]
opsgate tuning jobs [--status running]
opsgate tuning show JOB_ID          # status, progress, the loss curve, metrics, base vs adapter
opsgate tuning logs JOB_ID [--follow]   # the worker's log lines (follow: until the job ends)
opsgate tuning cancel JOB_ID | opsgate tuning resume JOB_ID
opsgate tuning adapters | opsgate tuning adapter NAME | opsgate tuning delete-adapter NAME
```
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

tuning_app = typer.Typer(
    help="Fine-tuning: LoRA jobs from datasets, the adapter registry.", no_args_is_help=True
)
out = Console()
JOBS, ADAPTERS = "/admin/v1/tuning/jobs", "/admin/v1/adapters"
BARS = "▁▂▃▄▅▆▇█"
FINAL = ("succeeded", "failed", "cancelled")


def register(app: typer.Typer) -> None:
    app.add_typer(tuning_app, name="tuning")


def _dump(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def sparkline(values: list[float], width: int = 40) -> str:
    """The loss curve in one line of block characters (each a mean of its share of steps)."""
    if not values:
        return "-"
    size = max(1, -(-len(values) // width))
    means = [sum(c) / len(c) for c in (values[i : i + size] for i in range(0, len(values), size))]
    low, high = min(means), max(means)
    span = (high - low) or 1.0
    return "".join(BARS[round((v - low) / span * (len(BARS) - 1))] for v in means)


def _progress(job: dict[str, Any]) -> str:
    total = job.get("total_steps")
    return f"{job['steps']}/{total}" if total else str(job["steps"])


@tuning_app.command("create")
def create(
    dataset: Annotated[str, typer.Option(help="dataset id or name")],
    base: Annotated[str, typer.Option(help="base model folder (Hugging Face format)")],
    adapter: Annotated[str, typer.Option(help="the name the adapter registers as")],
    version: Annotated[int | None, typer.Option(help="dataset version (default: latest)")] = None,
    epochs: int = 3,
    rank: int = 8,
    alpha: int = 16,
    learning_rate: Annotated[float, typer.Option("--lr")] = 5e-3,
    batch_size: int = 4,
    target_module: Annotated[
        list[str] | None, typer.Option(help="modules to adapt (default: q_proj, v_proj)")
    ] = None,
    validation: Annotated[float, typer.Option(help="held-back share")] = 0.2,
    scorer: Annotated[
        list[str] | None,
        typer.Option(help="scorer of base vs adapter (default: exact, contains, overlap)"),
    ] = None,
    no_evaluation: Annotated[bool, typer.Option(help="skip base vs adapter")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="answer length when evaluating")] = 32,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Start a LoRA job (checked first: the dataset, the base folder, the adapter name, the
    scorers)."""
    settings: dict[str, Any] = {
        "epochs": epochs,
        "rank": rank,
        "alpha": alpha,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
    }
    if target_module:
        settings["target_modules"] = target_module
    body = {
        "dataset": dataset,
        "dataset_version": version,
        "base": base,
        "adapter": adapter,
        "settings": settings,
        "validation": validation,
    }
    evaluation: dict[str, Any] = {"max_new_tokens": max_new_tokens}
    if scorer or no_evaluation:
        evaluation["scorers"] = [] if no_evaluation else scorer
    body["evaluation"] = evaluation
    job = call(url, "POST", JOBS, body, timeout=600)
    if as_json:
        _dump(job)
        return
    out.print(f"job {job['id']} {job['status']}: adapter {job['adapter']}", highlight=False)


@tuning_app.command("jobs")
def jobs(
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, ...")] = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Tuning jobs, newest first."""
    body = get_json(url, JOBS, [("status", status)])
    if as_json:
        _dump(body)
        return
    columns = (
        Column("id"),
        Column("status"),
        Column("steps", justify="right"),
        Column("adapter"),
        Column("dataset", 1),
        Column("tainted", 2),
        Column("error", 3, wrap=True),
    )
    rows = [
        (
            j["id"],
            j["status"],
            _progress(j),
            j["adapter"],
            f"{j['dataset_id']}@{j['dataset_version']}",
            "yes" if j["tainted"] else "",
            j["error"] or "",
        )
        for j in body["data"]
    ]
    print_table(out, columns, rows)


@tuning_app.command("show")
def show(job_id: str, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """One job: status, progress, the loss curve and its metrics."""
    job = get_json(url, f"{JOBS}/{job_id}")
    if as_json:
        _dump(job)
        return
    losses = job["losses"]
    lines = [
        f"job {job['id']}  {job['status']}  steps {_progress(job)}",
        f"adapter {job['adapter']}  dataset {job['dataset_id']}@{job['dataset_version']}",
        f"base {job['base']} ({job['base_fingerprint']})",
        f"loss {sparkline(losses)}  first {losses[0]:.3f} last {losses[-1]:.3f}"
        if losses
        else "loss -",
    ]
    metrics = dict(job["metrics"])
    evaluation = metrics.pop("evaluation", None)
    lines += [f"{k} {v}" for k, v in sorted(metrics.items())]
    lines += _evaluation_lines(evaluation)
    lines += _card_lines(job.get("card"))
    if job["error"]:
        lines.append(f"error: {job['error']}")
    if job["tainted"]:
        lines.append("tainted: trained on rows of an erased end user (retrain without them)")
    out.print("\n".join(lines), highlight=False)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _evaluation_lines(evaluation: dict[str, Any] | None) -> list[str]:
    """Base vs adapter per scorer, then the example rows."""
    if not evaluation:
        return []
    if "error" in evaluation:
        return [f"evaluation failed: {evaluation['error']}"]
    lines = [f"evaluation on {evaluation['n']} validation examples (base → adapter):"]
    for name, s in evaluation["scorers"].items():
        delta = "" if s["delta"] is None else f"  ({s['delta']:+.3f})"
        failed = f"  {s['failed']} failed" if s["failed"] else ""
        lines.append(f"  {name}  {_figure(s['base'])} → {_figure(s['adapter'])}{delta}{failed}")
    for row in evaluation.get("examples", []):
        lines.append(f"  > {row['input']}")
        lines.append(f"    expected {row['expected']!r}")
        lines.append(f"    base     {row['base']!r}")
        lines.append(f"    adapter  {row['adapter']!r}")
    return lines


def _card_lines(card: dict[str, Any] | None) -> list[str]:
    if not card:
        return []
    counts, export = card["counts"], card["export"]
    lines = [
        f"data card: {card['dataset']['name']}@{card['dataset']['version']}, "
        f"{counts['rows_exported']} rows exported of {counts['dataset_rows']} "
        f"({counts['duplicates_dropped']} duplicates dropped, "
        f"{counts['skipped_without_answer']} without an answer), "
        f"{export['corrections_used']} corrections, {export['redactions']} PII redactions",
        f"  train {counts['train']} / validation {counts['validation']} examples "
        f"({counts['conversations']['train']} / {counts['conversations']['validation']} "
        f"conversations), split seed {card['split']['seed']}",
    ]
    if tokens := card.get("tokens"):
        train, held = tokens["train"], tokens["validation"]
        lines.append(
            f"  tokens: train {train['prompt']} prompt + {train['answer']} answer, "
            f"validation {held['prompt']} + {held['answer']}"
        )
    return lines


@tuning_app.command("logs")
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="until the job ends")] = False,
    after: Annotated[int, typer.Option(help="only lines numbered above this")] = 0,
    poll: Annotated[float, typer.Option(help="seconds between looks (--follow)")] = 1.0,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """The job's log: the worker's output and events (its last 500 lines)."""
    while True:
        body = get_json(url, f"{JOBS}/{job_id}/logs", [("after", str(after))])
        if body["first"] is not None and body["first"] > after + 1 and after:
            out.print(f"… lines {after + 1} to {body['first'] - 1} dropped", highlight=False)
        for line in body["data"]:
            if as_json:
                typer.echo(json.dumps(line, ensure_ascii=False))
            else:
                typer.echo(f"{line['seq']:>5} {line['stream']:<6} {line['line']}")
        after = body["last"]
        if not follow or body["status"] in FINAL:
            return
        time.sleep(poll)


def _change(url: str, job_id: str, action: str, as_json: bool) -> None:
    job = call(url, "POST", f"{JOBS}/{job_id}/{action}")
    if as_json:
        _dump(job)
        return
    asked = " (stopping at the next step)" if job.get("cancel_requested") else ""
    out.print(f"job {job['id']} {job['status']}{asked}", highlight=False)


@tuning_app.command("cancel")
def cancel(job_id: str, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Cancel a queued job, or stop a running one at its next step (checkpoint kept)."""
    _change(url, job_id, "cancel", as_json)


@tuning_app.command("resume")
def resume(job_id: str, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Queue a cancelled or failed job again; it continues from its checkpoint."""
    _change(url, job_id, "resume", as_json)


@tuning_app.command("adapters")
def adapters(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Registered adapters with their lineage and metrics."""
    body = get_json(url, ADAPTERS)
    if as_json:
        _dump(body)
        return
    columns = (
        Column("name"),
        Column("dataset"),
        Column("job", 1),
        Column("val. loss", 1, justify="right"),
        Column("exact", 1, justify="right"),
        Column("tainted", 2),
        Column("base", 3, wrap=True),
    )
    rows = [
        (
            a["name"],
            f"{a['dataset_id']}@{a['dataset_version']}",
            a["job_id"],
            _loss(a["metrics"]),
            _exact(a["metrics"]),
            "yes" if a["tainted"] else "",
            a["base"],
        )
        for a in body["data"]
    ]
    print_table(out, columns, rows)


def _loss(metrics: dict[str, Any]) -> str:
    before, after = metrics.get("validation_before"), metrics.get("validation_after")
    return f"{before:.3f} → {after:.3f}" if before is not None and after is not None else "-"


def _exact(metrics: dict[str, Any]) -> str:
    """Exact match on the validation split, base → adapter (when the job measured it)."""
    exact = ((metrics.get("evaluation") or {}).get("scorers") or {}).get("exact")
    return f"{_figure(exact['base'])} → {_figure(exact['adapter'])}" if exact else "-"


@tuning_app.command("adapter")
def adapter(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """One adapter, as JSON."""
    _dump(get_json(url, f"{ADAPTERS}/{name}"))


@tuning_app.command("delete-adapter")
def delete_adapter(name: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Unregister an adapter and delete its weights (its job stays)."""
    call(url, "DELETE", f"{ADAPTERS}/{name}")
    out.print(f"adapter {name} deleted", highlight=False)
