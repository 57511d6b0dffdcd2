"""`opsgate prompts push|pull|list|show|diff|promote|rollback`: the prompt registry from a shell
or CI, through the running gateway's admin API (`$OPSGATE_ADMIN_KEY` or `$OPSGATE_MASTER_KEY`).

`push` takes files or folders of `*.yaml` / `*.yml` prompt files (prompts/files.py) and is
idempotent: the gateway compares each file's content hash with the prompt's latest version and
makes no version for an unchanged file, so a folder of prompts in git can be pushed on every
commit.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from opsgate.cli.client import DEFAULT_URL, UrlOpt, call
from opsgate.cli.tables import Column, print_table
from opsgate.prompts.files import read_file, to_file
from opsgate.prompts.model import PROTECTED_LABEL
from opsgate.prompts.spec import PromptSpec

prompts_app = typer.Typer(
    help="Versioned prompts: push files, move labels, diff and roll back.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)

BASE = "/admin/v1/prompts"
Team = Annotated[
    str | None, typer.Option("--team", help="the team's prompts (admins; default: your key's)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]
Label = Annotated[str | None, typer.Option("--label", "-l", help="the version this label names")]
Version = Annotated[int | None, typer.Option("--version", "-v", help="a version number")]


_PUSH_COLUMNS = (
    Column("prompt"),
    Column("version"),
    Column("status"),
    Column("labels", 1),
    Column("file", 2),
)
_LIST_COLUMNS = (
    Column("prompt"),
    Column("team", 2),
    Column("latest"),
    Column("labels", 1, wrap=True),
    Column("description", 4, wrap=True),
    Column("updated (UTC)", 3),
)
_VERSION_COLUMNS = (
    Column("version"),
    Column("labels"),
    Column("author", 2),
    Column("message", 3, wrap=True),
    Column("created (UTC)", 1),
)
_MOVE_COLUMNS = (
    Column("label"),
    Column("from"),
    Column("to"),
    Column("by", 2),
    Column("at (UTC)", 1),
)


def register(app: typer.Typer) -> None:
    app.add_typer(prompts_app, name="prompts")


def _path(name: str, *rest: str) -> str:
    return "/".join([BASE, urllib.parse.quote(name, safe=""), *rest])


def prompt_files(paths: list[Path]) -> list[Path]:
    """The YAML files among `paths` (folders searched, not recursively), sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            found.append(path)
        else:
            err.print(f"[bold red]no such file or folder[/]: {path}", highlight=False)
            raise typer.Exit(2)
    return found


@prompts_app.command("push")
def push(
    paths: Annotated[list[Path], typer.Argument(help="prompt files or folders of them")],
    team: Team = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="point this label at each pushed version (repeatable)"),
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="commit message")] = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Push prompt files; an unchanged file makes no new version."""
    results, failed = [], []
    for file in prompt_files(paths):
        try:
            name, data = read_file(file)
        except (ValueError, OSError) as exc:
            err.print(f"[bold red]{file}[/]: {exc}", highlight=False)
            failed.append(file)
            continue
        body = {**data, "name": name, "message": message, "labels": label or []}
        if team is not None:
            body["team_id"] = team
        try:
            results.append((file, call(url, "POST", BASE, body)))
        except typer.Exit:
            err.print(f"  in {file}", highlight=False)
            failed.append(file)
    if as_json:
        typer.echo(json.dumps([r for _, r in results], indent=2))
    else:
        rows = [
            (
                r["name"],
                str(r["version"]),
                "new version" if r["created"] else "unchanged",
                ", ".join(r.get("labels") or []),
                str(file),
            )
            for file, r in results
        ]
        print_table(out, _PUSH_COLUMNS, rows)
    if failed:
        raise typer.Exit(1)


def _version(
    url: str, name: str, team: str | None, label: str | None, version: int | None
) -> dict[str, Any]:
    params = [("team_id", team), ("label", label), ("version", str(version) if version else None)]
    found: dict[str, Any] = call(url, "GET", _path(name), params=params)
    return found


def spec_of(answer: dict[str, Any]) -> PromptSpec:
    """The version's content from an API answer (its other fields dropped)."""
    return PromptSpec.model_validate({k: answer[k] for k in PromptSpec.model_fields if k in answer})


@prompts_app.command("pull")
def pull(
    name: str,
    team: Team = None,
    label: Label = None,
    version: Version = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="a folder or file; default: stdout")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Write a version (default: the latest) as a prompt file."""
    found = _version(url, name, team, label, version)
    text = to_file(found["name"], spec_of(found))
    if output is None:
        typer.echo(text, nl=False)
        return
    target = output / f"{found['name']}.yaml" if output.is_dir() else output
    target.write_text(text, encoding="utf-8")
    err.print(f"wrote {found['name']} version {found['version']} to {target}", highlight=False)


@prompts_app.command("list")
def list_prompts(team: Team = None, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Prompts, their latest version and their labels."""
    data = call(url, "GET", BASE, params=[("team_id", team)])["data"]
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows = [
        (
            p["name"],
            p["team_id"] or "-",
            str(p["latest_version"]),
            ", ".join(f"{k}→{v}" for k, v in p["labels"].items()) or "-",
            p["description"] or "",
            p["updated_at_iso"][:19].replace("T", " "),
        )
        for p in data
    ]
    print_table(out, _LIST_COLUMNS, rows)


@prompts_app.command("show")
def show(
    name: str,
    team: Team = None,
    label: Label = None,
    version: Version = None,
    history: Annotated[bool, typer.Option("--history", help="also the label history")] = False,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """A version's file, its labels and versions (and the label history)."""
    found = _version(url, name, team, label, version)
    versions = call(url, "GET", _path(name, "versions"), params=[("team_id", team)])["data"]
    moves = (
        call(url, "GET", _path(name, "history"), params=[("team_id", team)])["data"]
        if history
        else []
    )
    if as_json:
        typer.echo(json.dumps({"version": found, "versions": versions, "history": moves}, indent=2))
        return
    head = f"[bold]{name}[/] version {found['version']}  hash {found['content_hash'][:12]}"
    out.print(head, highlight=False)
    out.print(to_file(found["name"], spec_of(found)), markup=False, highlight=False)
    rows = [
        (str(v["version"]), ", ".join(v["labels"]), v["author"] or "-", v["message"] or "", _at(v))
        for v in versions
    ]
    print_table(out, _VERSION_COLUMNS, rows)
    if moves:
        rows = [
            (
                m["label"],
                str(m["from_version"] or "-"),
                str(m["to_version"]),
                m["actor"] or "-",
                m["at_iso"][:19].replace("T", " "),
            )
            for m in moves
        ]
        print_table(out, _MOVE_COLUMNS, rows, title="label history")


@prompts_app.command("diff")
def diff(
    name: str,
    old: Annotated[int, typer.Argument(help="from this version")],
    new: Annotated[int, typer.Argument(help="to this version")],
    team: Team = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """A unified diff of two versions' files."""
    params = [("team_id", team), ("from", str(old)), ("to", str(new))]
    answer = call(url, "GET", _path(name, "diff"), params=params)
    if not answer["unified"]:
        out.print(f"versions {old} and {new} have the same content")
        return
    for line in answer["unified"].splitlines():
        style = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1])
        out.print(line, style=style, markup=False, highlight=False)


@prompts_app.command("promote")
def promote(
    name: str,
    version: Annotated[int, typer.Argument(help="the version the label will name")],
    label: Annotated[str, typer.Option("--label", "-l")] = PROTECTED_LABEL,
    team: Team = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Point a label (default: production) at a version, on every replica within a second."""
    moved = call(
        url,
        "POST",
        _path(name, "labels", label),
        {"version": version},
        params=[("team_id", team)],
    )
    _moved(moved)


@prompts_app.command("rollback")
def rollback(
    name: str,
    label: Annotated[str, typer.Option("--label", "-l")] = PROTECTED_LABEL,
    team: Team = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Point a label back where it was before its latest move."""
    moved = call(url, "POST", _path(name, "labels", label, "rollback"), params=[("team_id", team)])
    _moved(moved)


def _at(version: dict[str, Any]) -> str:
    return str(version["created_at_iso"])[:19].replace("T", " ")


def _moved(move: dict[str, Any]) -> None:
    before = move["from_version"] if move["from_version"] is not None else "nothing"
    out.print(
        f"[green]moved[/] {move['name']}@{move['label']}: {before} → {move['to_version']}",
        highlight=False,
    )
