"""Trace filters from command-line flags, for `opsgate datasets` and `opsgate review`.

`--since 7d --model support-bot --where thumbs=true` makes one filter (feedback/selection.py);
`--where` takes `metric=value`, `!=`, `<`, `<=`, `>`, `>=` (values: true/false, numbers, else
text) and may repeat; `--filter '{...}'` adds a whole filter as JSON (filters are a union).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from opsgate.errors import BadRequestError
from opsgate.feedback.selection import parse_condition

err = Console(stderr=True)


SinceOpt = Annotated[str | None, typer.Option(help="traces since: an age (7d, 12h) or ISO time")]
ModelOpt = Annotated[str | None, typer.Option(help="the model the client asked for")]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option("--where", "-w", help="a score condition: thumbs=true, rating<3 (repeatable)"),
]
FlaggedOpt = Annotated[bool, typer.Option("--flagged", help="flagged by the guard")]
FilterOpt = Annotated[
    list[str] | None, typer.Option("--filter", help="a whole trace filter as JSON (repeatable)")
]


def condition(text: str) -> dict[str, Any]:
    try:
        return parse_condition(text).model_dump(exclude_none=True)
    except BadRequestError:
        err.print(f"[bold red]--where {text!r}[/]: expected metric=value, rating<3, ...")
        raise typer.Exit(2) from None


def trace_filters(
    *,
    since: str | None,
    model: str | None,
    where: list[str] | None,
    flagged: bool = False,
    extra: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The filters the flags describe: one from the shorthand flags (if any is given) and one
    per `--filter`."""
    filters: list[dict[str, Any]] = []
    simple: dict[str, Any] = {}
    if since:
        simple["since"] = since
    if model:
        simple["model"] = model
    if where:
        simple["scores"] = [condition(w) for w in where]
    if flagged:
        simple["flagged"] = True
    if simple:
        filters.append(simple)
    for raw in extra or ():
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            err.print(f"[bold red]--filter[/]: not JSON ({exc})", highlight=False)
            raise typer.Exit(2) from None
        if not isinstance(parsed, dict):
            err.print("[bold red]--filter[/]: expected a JSON object")
            raise typer.Exit(2)
        filters.append(parsed)
    return filters
