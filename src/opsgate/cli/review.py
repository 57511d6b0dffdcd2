"""`opsgate review queues|create|show|fill|delete`: review queues through the running gateway.

```
opsgate review queues
opsgate review create thumbs-down --since 7d --where thumbs=false --reviewer user-ada
opsgate review create sample --model support-bot --sample 0.01
opsgate review show thumbs-down
```
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from opsgate.cli.client import DEFAULT_URL, UrlOpt, call, get_json
from opsgate.cli.filters import FilterOpt, FlaggedOpt, ModelOpt, SinceOpt, WhereOpt, trace_filters
from opsgate.cli.tables import Column, print_table
from opsgate.cli.traces import JsonOpt

review_app = typer.Typer(help="Review queues: list, create, show progress.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
BASE = "/admin/v1/review/queues"
NameArg = Annotated[str, typer.Argument(help="the queue's name (or id)")]


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")


def _dump(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _progress_cell(queue: dict[str, Any]) -> str:
    progress = queue.get("progress") or {}
    total = progress.get("total", 0)
    done = progress.get("done", 0)
    share = f" ({done / total:.0%})" if total else ""
    return f"{done}/{total}{share}"


@review_app.command("queues")
def queues(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """The review queues you may review, with their progress."""
    body = get_json(url, BASE)
    if as_json:
        _dump(body)
        return
    columns = (
        Column("name"),
        Column("id", 3),
        Column("team", 2),
        Column("done", justify="right"),
        Column("in progress", 1, justify="right"),
        Column("rule", 4, wrap=True),
    )
    rows = [
        (
            q["name"],
            q["id"],
            q["team_id"] or "-",
            _progress_cell(q),
            str(q["progress"]["in_progress"]),
            json.dumps(q["rule"], ensure_ascii=False)
            + (f" sample {q['sample']}" if q["sample"] < 1 else ""),
        )
        for q in body["data"]
    ]
    print_table(out, columns, rows)


@review_app.command("create")
def create(
    name: NameArg,
    since: SinceOpt = "7d",
    model: ModelOpt = None,
    where: WhereOpt = None,
    flagged: FlaggedOpt = False,
    filters: FilterOpt = None,
    match_any: Annotated[
        bool, typer.Option("--any", help="a trace matching any condition (default: all)")
    ] = False,
    sample: Annotated[float, typer.Option(min=0.0001, max=1.0, help="share kept, e.g. 0.01")] = 1.0,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="a metric reviewers label (repeatable)")
    ] = None,
    reviewer: Annotated[
        list[str] | None,
        typer.Option("--reviewer", help="a member's user or key id allowed to review"),
    ] = None,
    team: Annotated[str | None, typer.Option(help="owning team (admins; default: yours)")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Create a queue from a rule over traces and scores, and fill it."""
    found = trace_filters(since=since, model=model, where=where, flagged=flagged, extra=filters)
    if len(found) > 1:
        err.print("a queue takes one rule: use the flags or one --filter, not both")
        raise typer.Exit(2)
    rule = found[0] if found else {}
    if match_any:
        rule["match"] = "any"
    body: dict[str, Any] = {"name": name, "rule": rule, "sample": sample}
    optional = {
        "metrics": metric,
        "reviewers": reviewer,
        "team_id": team,
        "description": description,
    }
    body.update({k: v for k, v in optional.items() if v})
    made = call(url, "POST", BASE, body, timeout=600)
    if as_json:
        _dump(made)
        return
    out.print(
        f"[green]created[/] {made['name']} ({made['id']}): {made['progress']['total']} traces",
        highlight=False,
    )


@review_app.command("show")
def show(name: NameArg, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """A queue's rule, progress and counts per reviewer."""
    body = get_json(url, f"{BASE}/{name}")
    if as_json:
        _dump(body)
        return
    progress = body["progress"]
    out.print(
        f"[bold]{body['name']}[/] ({body['id']}): {_progress_cell(body)} done, "
        f"{progress['in_progress']} in progress, {progress['pending']} pending",
        highlight=False,
    )
    out.print(f"rule: {json.dumps(body['rule'], ensure_ascii=False)}", highlight=False)
    out.print(f"labels: {', '.join(body['metrics']) or '-'}", highlight=False)
    reviewers = sorted(set(progress["labelled_by"]) | set(progress["skipped_by"]))
    rows = [
        (r, str(progress["labelled_by"].get(r, 0)), str(progress["skipped_by"].get(r, 0)))
        for r in reviewers
    ]
    columns = (
        Column("reviewer"),
        Column("labelled", justify="right"),
        Column("skipped", justify="right"),
    )
    print_table(out, columns, rows)


@review_app.command("fill")
def fill(name: NameArg, url: UrlOpt = DEFAULT_URL) -> None:
    """Look for new matching traces now."""
    body = call(url, "POST", f"{BASE}/{name}/fill", timeout=600)
    out.print(f"{body['added']} traces added; {_progress_cell(body)} done", highlight=False)


@review_app.command("delete")
def delete(name: NameArg, url: UrlOpt = DEFAULT_URL) -> None:
    """Delete a queue (the labels stay in the score store)."""
    body = call(url, "DELETE", f"{BASE}/{name}")
    out.print(f"[green]deleted[/] {body['id']}", highlight=False)
