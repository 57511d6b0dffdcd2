"""`opsgate feedback send|list`: score answers and read scores through the running gateway.

`send` posts to `POST /v1/feedback` (a key with `models:call`: `$OPSGATE_ADMIN_KEY` or
`$OPSGATE_MASTER_KEY`), one score from the arguments or many from a JSON Lines file (one score
object per line, sent in batches); `list` reads `GET /admin/v1/feedback`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress

from opsgate.cli.client import DEFAULT_URL, UrlOpt, call, get_json
from opsgate.cli.tables import Column, print_table
from opsgate.cli.traces import JsonOpt, Since, TextOpt, Until, when

feedback_app = typer.Typer(help="Send and list feedback scores.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
BATCH = 1000
"""Scores per request when sending a file (the gateway's default `feedback.max_batch`)."""


def register(app: typer.Typer) -> None:
    app.add_typer(feedback_app, name="feedback")


def parse_value(text: str) -> bool | float | str:
    """`true`/`false` for boolean metrics, a number for float metrics, else the text itself
    (a category value or a comment)."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(text)
    except ValueError:
        return text


def _read_scores(path: Path) -> list[dict[str, Any]]:
    scores = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            err.print(f"[bold red]{path}:{number}[/]: not JSON ({exc})", highlight=False)
            raise typer.Exit(2) from None
        if not isinstance(item, dict):
            err.print(f"[bold red]{path}:{number}[/]: expected a score object", highlight=False)
            raise typer.Exit(2)
        scores.append(item)
    return scores


@feedback_app.command("send")
def send(
    metric: Annotated[
        str | None, typer.Argument(help="a declared metric (thumbs, rating, ...)")
    ] = None,
    value: Annotated[str | None, typer.Argument(help="true/false, a number, or a category")] = None,
    trace: Annotated[
        str | None, typer.Option(help="the scored answer's x-opsgate-trace-id")
    ] = None,
    session: Annotated[str | None, typer.Option(help="the session (session-level metrics)")] = None,
    comment: TextOpt = None,
    correction: Annotated[str | None, typer.Option(help="the better answer")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="a repeat is stored once")] = None,
    source: Annotated[str | None, typer.Option(help="api (default), end_user or evaluator")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", exists=True, dir_okay=False, help="JSON Lines of scores"),
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Score an answer (or a session), or send every score of a JSON Lines file."""
    if file is not None:
        if metric is not None or value is not None:
            err.print("give either METRIC VALUE or --file, not both")
            raise typer.Exit(2)
        _send_file(url, file, as_json)
        return
    if metric is None or value is None:
        err.print("give METRIC and VALUE (or --file)")
        raise typer.Exit(2)
    item: dict[str, Any] = {"metric": metric, "value": parse_value(value)}
    optional = {
        "trace_id": trace,
        "session_id": session,
        "comment": comment,
        "correction": correction,
        "idempotency_key": idempotency_key,
        "source": source,
    }
    item.update({k: v for k, v in optional.items() if v is not None})
    body = call(url, "POST", "/v1/feedback", item)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    [score] = body["data"]
    out.print(f"[green]stored[/] {score['id']} ({score['metric']} = {score['value']})")


def _send_file(url: str, path: Path, as_json: bool) -> None:
    scores = _read_scores(path)
    sent: list[Any] = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("sending scores", total=len(scores))
        for start in range(0, len(scores), BATCH):
            batch = scores[start : start + BATCH]
            sent += call(url, "POST", "/v1/feedback", {"scores": batch})["data"]
            progress.advance(task, len(batch))
    if as_json:
        typer.echo(json.dumps({"object": "list", "data": sent}, indent=2))
        return
    out.print(f"[green]stored {len(sent)} scores[/] from {path}")


_COLUMNS = (
    Column("created (UTC)", 1, wrap=True),
    Column("id"),
    Column("metric", 0),
    Column("value", 0),
    Column("source", 2),
    Column("trace / session", 1),
    Column("model", 3, wrap=True),
    Column("comment", 4, wrap=True),
)


@feedback_app.command("list")
def list_scores(
    metric: TextOpt = None,
    source: TextOpt = None,
    trace: TextOpt = None,
    session: TextOpt = None,
    model: TextOpt = None,
    key_id: TextOpt = None,
    team_id: TextOpt = None,
    end_user: TextOpt = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next page, as printed below a page")] = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """List scores, newest first."""
    params: list[tuple[str, str | None]] = [
        ("metric", metric),
        ("source", source),
        ("trace_id", trace),
        ("session_id", session),
        ("model", model),
        ("key_id", key_id),
        ("team_id", team_id),
        ("end_user", end_user),
        ("since", since),
        ("until", until),
        ("limit", str(limit)),
        ("cursor", cursor),
    ]
    body = get_json(url, "/admin/v1/feedback", params)
    if as_json:
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    rows = [
        [
            when(s["created_at"]),
            s["id"],
            s["metric"],
            json.dumps(s["value"], ensure_ascii=False),
            s["source"],
            s["trace_id"] or f"session {s['session_id']}",
            s["model"] or "-",
            s["comment"] or ("(correction)" if s["correction"] else "-"),
        ]
        for s in body["data"]
    ]
    print_table(out, _COLUMNS, rows)
    if body["next_cursor"]:
        out.print(f"more: --cursor {body['next_cursor']}", highlight=False)
    elif not body["data"]:
        out.print("no scores match")
