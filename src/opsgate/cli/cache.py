"""`opsgate cache ...` (stats, purge, erase through the running gateway's admin API) and
`opsgate models quantize` (export the local embedding model to ONNX and int8)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from opsgate.cli.client import DEFAULT_URL, UrlOpt, call

cache_app = typer.Typer(help="Inspect and purge the response cache.", no_args_is_help=True)
models_app = typer.Typer(
    help="Local embedding models for the semantic cache.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)

Text = Annotated[str | None, typer.Option()]


def register(app: typer.Typer) -> None:
    """Add `cache` and `models` to the main `opsgate` command."""
    app.add_typer(cache_app, name="cache")
    app.add_typer(models_app, name="models")


def _print_purged(answer: dict[str, Any]) -> None:
    purged = answer["purged"]
    out.print(f"purged {purged['exact']} exact and {purged['semantic']} semantic entries")


@cache_app.command("stats")
def stats(url: UrlOpt = DEFAULT_URL) -> None:
    """Entries held by each cache."""
    answer = call(url, "GET", "/admin/v1/cache", timeout=60)
    table = Table("cache", "backend / embedder", "entries")
    exact = answer["exact"]
    table.add_row("exact", exact["backend"], str(exact["entries"]))
    if "semantic" in answer:
        sem = answer["semantic"]
        table.add_row("semantic", f"{sem['embedder']} (>= {sem['threshold']})", str(sem["entries"]))
    out.print(table)


@cache_app.command("purge")
def purge(
    namespace: Annotated[str | None, typer.Option(help="team:<id>, key:<id> or shared")] = None,
    model: Text = None,
    key_id: Text = None,
    end_user: Text = None,
    older_than: Annotated[str | None, typer.Option(help="seconds or 15m, 2h, 7d")] = None,
    entry: Annotated[str | None, typer.Option(help="one entry, by its cache key")] = None,
    all_entries: Annotated[bool, typer.Option("--all", help="every entry")] = False,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Delete the entries matching every given filter (or --all)."""
    body: dict[str, Any] = {
        k: v
        for k, v in {
            "namespace": namespace,
            "model": model,
            "key_id": key_id,
            "end_user": end_user,
            "older_than": older_than,
            "entry": entry,
        }.items()
        if v is not None
    }
    if all_entries:
        body["all"] = True
    _print_purged(call(url, "POST", "/admin/v1/cache/purge", body, timeout=60))


@cache_app.command("erase")
def erase(end_user: Annotated[str, typer.Argument()], url: UrlOpt = DEFAULT_URL) -> None:
    """Remove every entry made by one end user's requests, from both caches."""
    _print_purged(call(url, "POST", "/admin/v1/cache/erase", {"end_user": end_user}, timeout=60))


@models_app.command("quantize")
def quantize(
    model_path: Annotated[
        Path | None, typer.Option(help="sentence-transformers folder (default: packaged MiniLM)")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="where the ONNX files go")] = None,
) -> None:
    """Export the local embedding model to ONNX and quantise it to int8 (the `onnx` embedder)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from opsgate.cache.embed.export import export_and_quantize
        from opsgate.cache.embed.local import EmbedderUnavailableError

        done = export_and_quantize(model_path, out_dir)
    except (ImportError, EmbedderUnavailableError) as exc:
        err.print(f"[bold red]cannot export[/]: {exc} (pip install 'opsgate[embed]')")
        raise typer.Exit(2) from None
    table = Table("file", "MiB")
    for file in (done.fp32, done.int8):
        table.add_row(str(file), f"{file.stat().st_size / 2**20:.1f}")
    out.print(table)
    out.print(
        f"use it: cache.semantic.embedder: {{type: onnx, model_path: {done.folder}}}",
        highlight=False,
    )
