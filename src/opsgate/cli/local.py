"""`opsgate local`: tooling for local GGUF models (the `llamacpp` provider), run offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opsgate.config.defaults import bundled_gguf
from opsgate.tools.quantize import KINDS, QuantizeError, quantize, stored_as, tensor_types

out = Console()
err = Console(stderr=True)
local_app = typer.Typer(help="Local GGUF models: requantise.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add `local quantize` to the main `opsgate` command."""
    app.add_typer(local_app, name="local")


@local_app.command("quantize")
def quantize_command(
    kinds: Annotated[str, typer.Argument(help=f"comma-separated target types: {', '.join(KINDS)}")],
    folder: Annotated[Path, typer.Option("--out", "-o", help="folder for the new files")],
    source: Annotated[
        Path | None,
        typer.Option(help="the GGUF to requantise (default: the bundled SmolLM2-135M Q4_1)"),
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="llama.cpp threads")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace files already there")] = False,
) -> None:
    """Requantise a GGUF model into other llama.cpp types, one file per type.

    From an already quantised file a lower type loses more precision, a higher one (Q8_0, F16)
    cannot win back what was lost: it only costs size (docs/local-models.md)."""
    path = source or (Path(found) if (found := bundled_gguf()) else None)
    if path is None:
        err.print("no --source and the local extra (with its bundled model) is not installed")
        raise typer.Exit(2)
    try:
        made = quantize(path, folder, kinds.split(","), threads=threads, overwrite=overwrite)
    except QuantizeError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    table = Table("type", "weights stored as", "MB", "seconds", "file")
    for q in made:
        took = "kept" if q.reused else f"{q.seconds:.1f}"
        types = stored_as(tensor_types(q.path))
        table.add_row(q.kind, types, f"{q.size / 1e6:.1f}", took, str(q.path))
    out.print(table)
