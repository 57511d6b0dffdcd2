"""`opsgate datasets create|list|show|add|remove|export|import` through the running gateway.

```
opsgate datasets create support-good --since 7d --model support-bot --where thumbs=true \\
    --also-corrected
opsgate datasets create reviewed --from-queue thumbs-down
opsgate datasets export support-good --format openai-chat -o train.jsonl
opsgate datasets import support-good rows.jsonl
```

Exports stream to a file with a progress bar, then print what the gateway reported (rows,
tokens, duplicates dropped, PII replaced); uploads stream the file with a progress bar.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from opsgate.cli.client import DEFAULT_URL, UrlOpt, call, get_json, stream
from opsgate.cli.filters import (
    FilterOpt,
    FlaggedOpt,
    ModelOpt,
    SinceOpt,
    WhereOpt,
    trace_filters,
)
from opsgate.cli.tables import Column, print_table
from opsgate.cli.traces import JsonOpt, when

datasets_app = typer.Typer(help="Build, inspect and export datasets.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
BASE = "/admin/v1/datasets"
CHUNK = 64 * 1024

NameArg = Annotated[str, typer.Argument(help="the dataset's name (or id)")]
QueueOpt = Annotated[str | None, typer.Option(help="a review queue: its labelled traces")]
TraceOpt = Annotated[list[str] | None, typer.Option("--trace", help="a trace id (repeatable)")]
LimitOpt = Annotated[int | None, typer.Option(min=1, help="most traces taken")]
AlsoCorrected = Annotated[
    bool, typer.Option(help="also every corrected answer (of --model, at any time)")
]


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")


def _dump(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _sources(
    *,
    since: str | None,
    model: str | None,
    where: list[str] | None,
    flagged: bool,
    filters: list[str] | None,
    also_corrected: bool,
    from_queue: str | None,
    traces: list[str] | None,
    limit: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    found = trace_filters(since=since, model=model, where=where, flagged=flagged, extra=filters)
    if also_corrected:
        found.append({"corrected": True, **({"model": model} if model else {})})
    if found:
        body["from_traces"] = found
    if from_queue:
        body["from_queue"] = from_queue
    if traces:
        body["trace_ids"] = traces
    if limit is not None:
        body["limit"] = limit
    return body


def _report_change(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _dump(body)
        return
    dataset = body["dataset"]
    skipped = {k: v for k, v in body.get("skipped", {}).items() if v}
    line = f"[green]{dataset['name']}[/] version {body['version']}: {body['added']} added"
    if body.get("removed"):
        line += f", {body['removed']} removed"
    if skipped:
        line += " (skipped: " + ", ".join(f"{k} {v}" for k, v in skipped.items()) + ")"
    if body.get("truncated"):
        line += " [yellow](more traces matched than --limit)[/]"
    out.print(line, highlight=False)


@datasets_app.command("create")
def create(
    name: NameArg,
    description: Annotated[str | None, typer.Option(help="what the dataset is for")] = None,
    team: Annotated[str | None, typer.Option(help="owning team (admins; default: yours)")] = None,
    since: SinceOpt = None,
    model: ModelOpt = None,
    where: WhereOpt = None,
    flagged: FlaggedOpt = False,
    filters: FilterOpt = None,
    also_corrected: AlsoCorrected = False,
    from_queue: QueueOpt = None,
    trace: TraceOpt = None,
    limit: LimitOpt = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Create a dataset (version 1) from traffic, a review queue or trace ids (or empty)."""
    body = _sources(
        since=since,
        model=model,
        where=where,
        flagged=flagged,
        filters=filters,
        also_corrected=also_corrected,
        from_queue=from_queue,
        traces=trace,
        limit=limit,
    )
    body["name"] = name
    if description:
        body["description"] = description
    if team:
        body["team_id"] = team
    _report_change(call(url, "POST", BASE, body, timeout=600), as_json)


@datasets_app.command("add")
def add(
    name: NameArg,
    since: SinceOpt = None,
    model: ModelOpt = None,
    where: WhereOpt = None,
    flagged: FlaggedOpt = False,
    filters: FilterOpt = None,
    also_corrected: AlsoCorrected = False,
    from_queue: QueueOpt = None,
    trace: TraceOpt = None,
    limit: LimitOpt = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Add rows (a new version) from traffic, a review queue or trace ids."""
    body = _sources(
        since=since,
        model=model,
        where=where,
        flagged=flagged,
        filters=filters,
        also_corrected=also_corrected,
        from_queue=from_queue,
        traces=trace,
        limit=limit,
    )
    if not body or set(body) == {"limit"}:
        err.print("name a source: --since/--model/--where, --filter, --from-queue or --trace")
        raise typer.Exit(2)
    _report_change(call(url, "POST", f"{BASE}/{name}/rows", body, timeout=600), as_json)


@datasets_app.command("remove")
def remove(
    name: NameArg,
    row: Annotated[list[str] | None, typer.Option("--row", help="a row id (repeatable)")] = None,
    trace: TraceOpt = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Remove rows (a new version; older versions keep them)."""
    body = {"row_ids": row or [], "trace_ids": trace or []}
    _report_change(call(url, "POST", f"{BASE}/{name}/rows/remove", body), as_json)


@datasets_app.command("list")
def list_datasets(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """The datasets in your scope."""
    body = get_json(url, BASE)
    if as_json:
        _dump(body)
        return
    columns = (
        Column("name"),
        Column("id", 2),
        Column("team", 3),
        Column("version", justify="right"),
        Column("rows", justify="right"),
        Column("updated (UTC)", 1, wrap=True),
    )
    rows = [
        (d["name"], d["id"], d["team_id"] or "-", str(d["version"]), str(d["rows"]),
         when(d["updated_at"]))
        for d in body["data"]
    ]  # fmt: skip
    print_table(out, columns, rows)


@datasets_app.command("show")
def show(name: NameArg, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """A dataset and its versions."""
    body = get_json(url, f"{BASE}/{name}")
    if as_json:
        _dump(body)
        return
    team = body["team_id"] or "no team"
    out.print(
        f"[bold]{body['name']}[/] ({body['id']}, {team}): version {body['version']}, "
        f"{body['rows']} rows",
        highlight=False,
    )
    if body.get("description"):
        out.print(body["description"], highlight=False)
    columns = (
        Column("version", justify="right"),
        Column("change"),
        Column("added", justify="right"),
        Column("removed", justify="right"),
        Column("when (UTC)", 1, wrap=True),
        Column("by", 2),
        Column("from", 3, wrap=True),
    )
    rows = [
        (str(v["version"]), v["change"], str(v["added"]), str(v["removed"]),
         when(v["created_at"]), v["created_by"], json.dumps(v["detail"], ensure_ascii=False))
        for v in body["versions"]
    ]  # fmt: skip
    print_table(out, columns, rows)


@datasets_app.command("export")
def export(
    name: NameArg,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="openai-chat, preference or eval")
    ] = "openai-chat",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")
    ] = None,
    version: Annotated[int | None, typer.Option(min=1, help="default: the newest")] = None,
    metric: Annotated[
        str | None, typer.Option(help="preference: pair answers to one input by this metric")
    ] = None,
    redact: Annotated[
        bool, typer.Option(help="replace PII (--no-redact needs datasets:manage; audited)")
    ] = True,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Export a version as JSONL, streamed, with a progress bar; then print the report."""
    params: list[tuple[str, str | None]] = [
        ("format", fmt),
        ("version", str(version) if version else None),
        ("metric", metric),
        ("redact", None if redact else "false"),
    ]
    target: BinaryIO = output.open("wb") if output else sys.stdout.buffer
    try:
        with stream(url, "GET", f"{BASE}/{name}/export", params=params, timeout=600) as resp:
            export_id = resp.headers["x-opsgate-export-id"]
            total = int(resp.headers.get("x-opsgate-dataset-rows") or 0)
            with _progress(output is not None) as progress:
                task = progress.add_task(f"exporting {name}", total=total or None)
                while piece := resp.read(CHUNK):
                    target.write(piece)
                    progress.advance(task, piece.count(b"\n"))
                progress.update(task, completed=total)
    finally:
        if output:
            target.close()
    report = get_json(url, f"{BASE}/{name}/exports/{export_id}")
    if as_json:
        _dump(report)
        return
    where = f" to {output}" if output else ""
    err.print(
        f"[green]exported[/] {report['rows']} lines{where} ({report['format']}, version "
        f"{report['version']}): {report['tokens']} tokens, {report['duplicates_dropped']} "
        f"duplicates dropped, {report['skipped']} rows skipped, "
        + (f"{report['redactions']} PII values replaced" if report["redacted"] else "NOT redacted"),
        highlight=False,
    )


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not show,
    )


class _Counted:
    """A file read through a progress bar (urllib reads it piece by piece)."""

    def __init__(self, file: BinaryIO, progress: Progress, task: Any) -> None:
        self._file, self._progress, self._task = file, progress, task

    def read(self, size: int = -1) -> bytes:
        piece = self._file.read(size)
        self._progress.advance(self._task, len(piece))
        return piece


@datasets_app.command("import")
def import_rows(
    name: NameArg,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines rows")],
    create: Annotated[bool, typer.Option(help="create the dataset first")] = False,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Upload rows as JSONL (one new version; a bad line refuses the whole file)."""
    if create:
        call(url, "POST", BASE, {"name": name})
    size = file.stat().st_size
    headers = {"content-type": "application/jsonl", "content-length": str(size)}
    with file.open("rb") as raw, _progress(True) as progress:
        task = progress.add_task(f"uploading {file.name}", total=size)
        body: Any = _Counted(raw, progress, task)
        with stream(
            url, "POST", f"{BASE}/{name}/import", data=body, headers=headers, timeout=600
        ) as resp:
            answer = json.loads(resp.read())
    _report_change(answer, as_json)
