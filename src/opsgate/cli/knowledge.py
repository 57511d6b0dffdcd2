"""`opsgate kb create|list|ingest|docs|search|delete`: knowledge bases through the running
gateway's admin API (`$OPSGATE_ADMIN_KEY` or `$OPSGATE_MASTER_KEY`).

`ingest` takes files and folders (walked for .txt .md .html .pdf), sends them in batches with a
progress bar, and prints what happened to each file: re-ingesting an unchanged file is a no-op
on the gateway, a changed one replaces its chunks, an unreadable one fails alone.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from opsgate.cli.client import DEFAULT_URL, UrlOpt, call
from opsgate.cli.tables import Column, print_table
from opsgate.rag.parse import FORMATS, format_of

kb_app = typer.Typer(
    help="Knowledge bases: create, ingest files, search, delete.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)

BASE = "/admin/v1/knowledge-bases"
BATCH_FILES = 32
BATCH_BYTES = 4 * 1024 * 1024
Team = Annotated[str | None, typer.Option("--team", help="the team's base (admins)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")


def _path(name: str, *rest: str) -> str:
    return "/".join([BASE, urllib.parse.quote(name, safe=""), *rest])


@kb_app.command("create")
def create(
    name: str,
    description: Annotated[str | None, typer.Option(help="what the base holds")] = None,
    team: Team = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="tokens per chunk")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="tokens shared by neighbours")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Create a knowledge base (of your key's team; admins may name one or none)."""
    body: dict[str, Any] = {"name": name}
    for key, value in (
        ("description", description),
        ("team_id", team),
        ("chunk_tokens", chunk_tokens),
        ("chunk_overlap", chunk_overlap),
    ):
        if value is not None:
            body[key] = value
    made = call(url, "POST", BASE, body)
    out.print(f"created knowledge base [bold]{made['name']}[/] ({made['embedder']})")


@kb_app.command("list")
def list_bases(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """The knowledge bases you can see."""
    data = call(url, "GET", BASE)
    if as_json:
        out.print_json(json.dumps(data))
        return
    rows = [
        (
            b["name"],
            b["team_id"] or "(shared)",
            str(b["documents"]),
            str(b["chunks"]),
            b["embedder"],
        )
        for b in data["data"]
    ]
    columns = (
        Column("name"),
        Column("team"),
        Column("documents"),
        Column("chunks"),
        Column("embedder", 1),
    )
    print_table(out, columns, rows)


def files_in(paths: list[Path]) -> Iterator[tuple[Path, str]]:
    """(file, the path it is stored under): folders walked for supported files, in order."""
    for given in paths:
        if given.is_dir():
            for found in sorted(p for p in given.rglob("*") if p.is_file()):
                if format_of(found.name) in FORMATS and found.suffix:
                    yield found, found.relative_to(given).as_posix()
        elif given.is_file():
            yield given, given.name
        else:
            err.print(f"[yellow]skipped[/] {given}: no such file or folder")


@kb_app.command("ingest")
def ingest(
    name: str,
    paths: Annotated[list[Path], typer.Argument(help="files and folders")],
    team: Team = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="a tag for every file")] = None,
    acl: Annotated[
        list[str] | None, typer.Option("--acl", help="who may read: team:<id>, user:<id>, ...")
    ] = None,
    end_user: Annotated[
        str | None, typer.Option(help="the end user the files belong to (erasable)")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Ingest files and folders (text, Markdown, HTML, PDF) into a knowledge base."""
    found = list(files_in(paths))
    if not found:
        err.print("no files to ingest")
        raise typer.Exit(1)
    extra: dict[str, Any] = {"tags": tags or [], "acl": acl or []}
    if end_user:
        extra["end_user"] = end_user
    totals = {"added": 0, "replaced": 0, "unchanged": 0, "failed": 0}
    failures: list[tuple[str, str]] = []
    params = [("team_id", team)]
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
    ) as progress:
        task = progress.add_task(f"ingesting into {name}", total=len(found))
        for batch in _batches(found):
            docs = [
                {"path": stored, "content_base64": base64.b64encode(data).decode(), **extra}
                for stored, data in batch
            ]
            answer = call(
                url,
                "POST",
                _path(name, "documents"),
                {"documents": docs},
                params=params,
                timeout=600,
            )
            for result in answer["results"]:
                totals[result["status"]] += 1
                if result["status"] == "failed":
                    failures.append((result["path"], result["error"] or ""))
            progress.advance(task, len(batch))
    for path, why in failures:
        err.print(f"[red]failed[/] {path}: {why}", highlight=False)
    out.print(", ".join(f"{count} {status}" for status, count in totals.items()))
    if failures:
        raise typer.Exit(1)


def _batches(found: list[tuple[Path, str]]) -> Iterator[list[tuple[str, bytes]]]:
    batch: list[tuple[str, bytes]] = []
    size = 0
    for file, stored in found:
        data = file.read_bytes()
        if batch and (len(batch) >= BATCH_FILES or size + len(data) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((stored, data))
        size += len(data)
    if batch:
        yield batch


@kb_app.command("docs")
def documents(
    name: str, team: Team = None, url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False
) -> None:
    """The documents of a knowledge base."""
    data = call(url, "GET", _path(name, "documents"), params=[("team_id", team), ("limit", "1000")])
    if as_json:
        out.print_json(json.dumps(data))
        return
    rows = [
        (d["path"], d["format"], str(d["version"]), str(d["chunks"]), ",".join(d["tags"]))
        for d in data["data"]
    ]
    columns = (
        Column("path"),
        Column("format"),
        Column("version"),
        Column("chunks"),
        Column("tags", 1),
    )
    print_table(out, columns, rows)


@kb_app.command("search")
def search(
    name: str,
    query: str,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="hits")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, bm25 or vector")] = "hybrid",
    team: Team = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Search a knowledge base as your key sees it."""
    body = {"query": query, "top_k": top_k, "mode": mode}
    data = call(url, "POST", _path(name, "search"), body, params=[("team_id", team)])
    if as_json:
        out.print_json(json.dumps(data))
        return
    rows = [
        (
            str(h["rank"]),
            f"{h['score']:.4f}",
            "+".join(h["retrievers"]),
            f"{h['path']}#{h['chunk']}",
            " ".join(h["text"].split())[:160],
        )
        for h in data["data"]
    ]
    columns = (
        Column("#"),
        Column("score"),
        Column("found by", 1),
        Column("chunk"),
        Column("text", 2, wrap=True),
    )
    print_table(out, columns, rows)


@kb_app.command("delete")
def delete(
    name: str,
    document: Annotated[
        str | None, typer.Option("--document", help="delete only this document (its path)")
    ] = None,
    team: Team = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Delete a knowledge base, or one of its documents."""
    if document:
        call(
            url, "DELETE", _path(name, "documents"), params=[("team_id", team), ("path", document)]
        )
        out.print(f"deleted {document} from {name}")
        return
    call(url, "DELETE", _path(name), params=[("team_id", team)])
    out.print(f"deleted knowledge base {name}")
