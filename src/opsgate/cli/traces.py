"""`opsgate traces`, `opsgate usage` and `opsgate db`: look at what the gateway recorded.

Reads go to the running gateway's admin API over HTTP, like `config reload`, so they work against
a remote or multi-replica deployment with only the master key and no database credentials.
`db upgrade` is the exception: it migrates the database itself, before any gateway runs.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from opsgate.cli.client import DEFAULT_URL, UrlOpt, get_json
from opsgate.cli.tables import Column, print_table

traces_app = typer.Typer(help="List and inspect stored traces.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]
Since = Annotated[
    str | None, typer.Option(help="ISO-8601 time or an age: 15m, 2h, 7d (start, inclusive)")
]
Until = Annotated[str | None, typer.Option(help="ISO-8601 time or an age (end, exclusive)")]
TextOpt = Annotated[str | None, typer.Option()]


def register(app: typer.Typer) -> None:
    """Add `traces`, `usage` and `db` to the main `opsgate` command."""
    app.add_typer(traces_app, name="traces")
    app.command("usage")(usage)
    app.add_typer(db_app, name="db")


def when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _status(trace: dict[str, Any]) -> Text:
    if trace["status"] == "ok":
        return Text("ok", style="green")
    return Text(f"error {trace['http_status']}", style="red")


_TRACE_COLUMNS = (
    Column("started (UTC)", 1, wrap=True),
    Column("id"),
    Column("model", 1, wrap=True),
    Column("status", 1),
    Column("latency ms", 2, justify="right"),
    Column("tokens in/out", 3, justify="right"),
    Column("cost $", 3, justify="right"),
    Column("deployment", 4, wrap=True),
    Column("ttft ms", 5, justify="right"),
    Column("cache", 5),
)


def _dump(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


@traces_app.command("list")
def traces_list(
    model: TextOpt = None,
    deployment: TextOpt = None,
    key_id: TextOpt = None,
    team_id: TextOpt = None,
    end_user: TextOpt = None,
    session_id: TextOpt = None,
    status: Annotated[str | None, typer.Option(help="ok or error")] = None,
    cache: Annotated[str | None, typer.Option(help="hit, hit-exact, hit-semantic, miss")] = None,
    min_duration_ms: Annotated[float | None, typer.Option(help="slower than this")] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", "-m", help="key:value (repeatable)")
    ] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next page, as printed below a page")] = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """List traces, newest first."""
    params: list[tuple[str, str | None]] = [
        ("model", model),
        ("deployment", deployment),
        ("key_id", key_id),
        ("team_id", team_id),
        ("end_user", end_user),
        ("session_id", session_id),
        ("status", status),
        ("cache", cache),
        ("min_duration_ms", None if min_duration_ms is None else str(min_duration_ms)),
        *(("metadata", pair) for pair in metadata or []),
        ("since", since),
        ("until", until),
        ("limit", str(limit)),
        ("cursor", cursor),
    ]
    body = get_json(url, "/admin/v1/traces", params)
    if as_json:
        _dump(body)
        return
    rows = [
        [
            when(t["started_at"]),
            t["id"],
            t["model_requested"],
            _status(t),
            ms(t["duration_ms"]),
            f"{t['prompt_tokens']}/{t['completion_tokens']}",
            t["cost_usd"],
            t["deployment"] or "-",
            ms(t["ttft_ms"]),
            t["cache"] or "-",
        ]
        for t in body["data"]
    ]
    print_table(out, _TRACE_COLUMNS, rows)
    if body["next_cursor"]:
        out.print(f"more: --cursor {body['next_cursor']}", highlight=False)
    elif not body["data"]:
        out.print("no traces match")


_SHOWN = (
    ("endpoint", "endpoint"),
    ("model requested", "model_requested"),
    ("model served", "model_served"),
    ("deployment", "deployment"),
    ("provider", "provider"),
    ("attempts", "attempts"),
    ("fallback", "fallback"),
    ("stream", "stream"),
    ("key", "key_id"),
    ("team", "team_id"),
    ("user", "user_id"),
    ("end user", "end_user"),
    ("session", "session_id"),
    ("cache", "cache"),
    ("finish reason", "finish_reason"),
    ("prompt version", "prompt_version"),
    ("experiment", "experiment"),
    ("variant", "variant"),
    ("error", "error_message"),
)


def _trace_table(t: dict[str, Any]) -> Table:
    table = Table("field", "value", title=f"trace {t['id']}", show_header=False)
    table.add_row("started", f"{when(t['started_at'])} UTC")
    ok = t["status"] == "ok"
    table.add_row("status", f"{'[green]ok' if ok else '[red]error'}[/] (HTTP {t['http_status']})")
    table.add_row("latency", f"{ms(t['duration_ms'])} ms (first token {ms(t['ttft_ms'])} ms)")
    tokens = f"{t['prompt_tokens']} in, {t['completion_tokens']} out, {t['cached_tokens']} cached"
    table.add_row("tokens", tokens + (" (estimated)" if t["usage_estimated"] else ""))
    table.add_row("cost", f"${t['cost_usd']} ({t['cost_micros']} micro-USD)")
    for label, name in _SHOWN:
        if t.get(name) not in (None, "", False):
            table.add_row(label, str(t[name]))
    if t["metadata"]:
        table.add_row("metadata", json.dumps(t["metadata"], ensure_ascii=False))
    if t["guard_verdicts"]:
        table.add_row("guard verdicts", json.dumps(t["guard_verdicts"], ensure_ascii=False))
    return table


_SPAN_COLUMNS = (
    Column("#"),
    Column("span", 0, wrap=True),
    Column("start +ms", 2, justify="right"),
    Column("duration ms", 1, justify="right"),
    Column("status", 1),
    Column("attributes", 3, wrap=True),
)


def _print_spans(t: dict[str, Any]) -> None:
    rows = []
    for i, span in enumerate(t["spans"], start=1):
        offset = (span["started_at"] - t["started_at"]) * 1000
        ok = span["status"] == "ok"
        status = Text(span["status"], style="green" if ok else "red")
        attributes = json.dumps(span["attributes"], ensure_ascii=False)
        rows.append([str(i), span["name"], ms(offset), ms(span["duration_ms"]), status, attributes])
    print_table(out, _SPAN_COLUMNS, rows, title="spans")


@traces_app.command("show")
def traces_show(
    trace_id: Annotated[str, typer.Argument(help="the x-opsgate-trace-id of a response")],
    bodies: Annotated[bool, typer.Option(help="include stored prompt and completion")] = False,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Show one trace with its spans."""
    path = f"/admin/v1/traces/{urllib.parse.quote(trace_id, safe='')}"
    body = get_json(url, path, [("include_bodies", "true" if bodies else None)])
    if as_json:
        _dump(body)
        return
    out.print(_trace_table(body))
    if body["spans"]:
        _print_spans(body)
    for name in ("request_body", "response_body") if bodies else ():
        out.rule(name.replace("_", " "))
        stored = body.get(name)
        out.print("(not stored)" if stored is None else stored["data"], markup=False)


@db_app.command("upgrade")
def db_upgrade(
    database_url: Annotated[
        str | None,
        typer.Option(help="default: $OPSGATE_DATABASE_URL, else the config's database_url"),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")] = None,
) -> None:
    """Migrate the database to this version's schema (the gateway also does it on start)."""
    from sqlalchemy.engine import make_url

    from opsgate.config.loader import ConfigError, load_config
    from opsgate.store.migrate import current, upgrade

    if database_url is None:
        try:
            database_url = load_config(config).settings.database_url
        except ConfigError as exc:
            err.print(f"[bold red]config error[/] in {exc.source}: {'; '.join(exc.problems)}")
            raise typer.Exit(2) from None
    shown = make_url(database_url).render_as_string(hide_password=True)
    try:
        asyncio.run(upgrade(database_url))
        revision = asyncio.run(current(database_url))
    except Exception as exc:  # any driver, URL or migration error: report it, exit non-zero
        err.print(f"[bold red]migration failed[/] on {shown}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"[green]database at revision {revision}[/]: {shown}", highlight=False)


def usage(
    by: Annotated[
        list[str] | None,
        typer.Option(
            help="model, deployment, key, team, user, status, prompt, version, label, hour, "
            "day (repeatable)"
        ),
    ] = None,
    bucket: Annotated[str | None, typer.Option(help="minute, hour, day or none")] = None,
    since: Since = None,
    until: Until = None,
    model: TextOpt = None,
    deployment: TextOpt = None,
    key_id: TextOpt = None,
    team_id: TextOpt = None,
    end_user: TextOpt = None,
    status: TextOpt = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Requests, tokens, cost and latency percentiles, grouped and bucketed (default: 24h)."""
    params: list[tuple[str, str | None]] = [
        ("group_by", ",".join(by) if by else None),
        ("bucket", bucket),
        ("since", since),
        ("until", until),
        ("model", model),
        ("deployment", deployment),
        ("key_id", key_id),
        ("team_id", team_id),
        ("end_user", end_user),
        ("status", status),
    ]
    body = get_json(url, "/admin/v1/usage", params)
    if as_json:
        _dump(body)
        return
    _print_usage(body)
    out.print(f"{when(body['since'])} to {when(body['until'])} UTC", style="dim")


_USAGE_COLUMNS = (
    Column("requests", 0, justify="right"),
    Column("errors", 1, justify="right"),
    Column("tokens in", 2, justify="right"),
    Column("tokens out", 2, justify="right"),
    Column("cost $", 1, justify="right"),
    Column("p50 ms", 2, justify="right"),
    Column("p95 ms", 2, justify="right"),
    Column("p99 ms", 3, justify="right"),
    Column("ttft ms", 3, justify="right"),
    Column("cache hit %", 3, justify="right"),
)


def _print_usage(body: dict[str, Any]) -> None:
    timed = body["bucket"] != "none"
    dims: list[str] = body["group_by"]
    columns = [
        *([Column(f"{body['bucket']} (UTC)", wrap=True)] if timed else []),
        *(Column(d, wrap=True) for d in dims),
        *_USAGE_COLUMNS,
    ]
    rows = []
    for row in body["data"]:
        rate = row["cache_hit_rate"]
        rows.append(
            [
                *([when(row["bucket_start"])] if timed else []),
                *(row["group"][d] or "-" for d in dims),
                str(row["requests"]),
                str(row["errors"]),
                str(row["prompt_tokens"]),
                str(row["completion_tokens"]),
                row["cost_usd"],
                ms(row["latency_ms_p50"]),
                ms(row["latency_ms_p95"]),
                ms(row["latency_ms_p99"]),
                ms(row["ttft_ms_avg"]),
                "-" if rate is None else f"{rate:.0%}",
            ]
        )
    print_table(out, columns, rows)
