"""`opsgate experiments create|list|show|pause|resume|stop|promote`: experiments through the
running gateway's admin API.

```
opsgate experiments create triage-v7.yaml
opsgate experiments list
opsgate experiments show triage-v7
opsgate experiments promote triage-v7 v7
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from opsgate.cli.client import DEFAULT_URL, UrlOpt, call, get_json
from opsgate.cli.tables import Column, print_table
from opsgate.cli.traces import JsonOpt

experiments_app = typer.Typer(
    help="Experiments: create, list, show statistics, pause, resume, stop, promote.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)
BASE = "/admin/v1/experiments"
NameArg = Annotated[str, typer.Argument(help="the experiment's name")]


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")


def _dump(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


@experiments_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="a YAML or JSON file: one experiment definition")],
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Create an experiment from a file (the fields of `experiments:` in the config)."""
    try:
        body = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        err.print(f"[red]cannot read {file}: {exc}[/red]")
        raise typer.Exit(2) from None
    if not isinstance(body, dict):
        err.print(f"[red]{file} must hold one mapping (an experiment)[/red]")
        raise typer.Exit(2)
    created = call(url, "POST", BASE, body)
    if as_json:
        _dump(created)
        return
    out.print(f"created experiment [bold]{created['name']}[/bold] ({created['status']})")


@experiments_app.command("list")
def list_experiments(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """The experiments in your scope, with their state and decision."""
    body = get_json(url, BASE)
    if as_json:
        _dump(body)
        return
    columns = (
        Column("name"),
        Column("status"),
        Column("decision"),
        Column("traffic", 2),
        Column("unit", 3),
        Column("variants", 1, wrap=True),
        Column("metric", 2),
    )
    rows = [
        (
            e["name"],
            e["status"],
            e["decision"],
            e["traffic"].get("model") or f"prompt:{e['traffic']['prompt']}@{e['traffic']['label']}",
            e["unit"],
            ", ".join(v["name"] for v in e["variants"]),
            e["metric"]["name"],
        )
        for e in body["data"]
    ]
    print_table(out, columns, rows)


@experiments_app.command("show")
def show(name: NameArg, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Per-variant statistics, guardrails and the decision log."""
    body = get_json(url, f"{BASE}/{name}")
    if as_json:
        _dump(body)
        return
    out.print(
        f"[bold]{body['name']}[/bold]  {body['status']}  decision: [bold]{body['decision']}"
        f"[/bold]  metric {body['metric']['name']}  unit {body['unit']}"
    )
    columns = (
        Column("variant"),
        Column("units", justify="right"),
        Column("requests", 2, justify="right"),
        Column("mean", justify="right"),
        Column("interval", 1),
        Column("diff vs control", 1),
        Column("p (Holm)", 1, justify="right"),
        Column("P(best)", justify="right"),
        Column("guardrails", 3, wrap=True),
    )
    rows = []
    for v in body["stats"]["variants"]:
        ci, diff = v["interval"], v["difference"]
        rows.append(
            (
                v["name"] + (" (control)" if v["control"] else ""),
                f"{v['scored_units']}/{v['units']}",
                str(v["requests"]),
                _num(v["mean"]),
                f"[{_num(ci['lower'])}, {_num(ci['upper'])}]" if ci else "-",
                f"{_num(diff['estimate'])} [{_num(diff['lower'])}, {_num(diff['upper'])}]"
                if diff
                else "-",
                _num(v["p_value_adjusted"]),
                f"{v['prob_best']:.0%}",
                ", ".join(f"{g['name']} {g['status']}" for g in v["guardrails"]) or "-",
            )
        )
    print_table(out, columns, rows)
    for entry in body["log"]:
        detail = json.dumps(entry["detail"], ensure_ascii=False) if entry["detail"] else ""
        out.print(f"  {entry['kind']:<15} {entry['actor'] or '-':<28} {detail}")


def _transition(name: str, action: str, url: str, as_json: bool) -> None:
    done = call(url, "POST", f"{BASE}/{name}/{action}")
    if as_json:
        _dump(done)
        return
    out.print(f"experiment [bold]{name}[/bold] is {done['status']}")


@experiments_app.command("pause")
def pause(name: NameArg, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Pause: no new units enter, requests get no variant."""
    _transition(name, "pause", url, as_json)


@experiments_app.command("resume")
def resume(name: NameArg, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Resume a paused experiment."""
    _transition(name, "resume", url, as_json)


@experiments_app.command("stop")
def stop(name: NameArg, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Stop for good: the traffic goes back to what it was."""
    _transition(name, "stop", url, as_json)


@experiments_app.command("promote")
def promote(
    name: NameArg,
    variant: Annotated[str, typer.Argument(help="the variant to promote")],
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Promote a variant (a prompt variant's version gets the promoted label)."""
    done = call(url, "POST", f"{BASE}/{name}/promote", {"variant": variant})
    if as_json:
        _dump(done)
        return
    out.print(f"experiment [bold]{name}[/bold]: variant {done['promoted']} promoted")
