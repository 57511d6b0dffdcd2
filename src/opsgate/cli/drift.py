"""`opsgate drift monitors|run|compare|proposals`: drift monitors through the running gateway,
and a local two-file comparison.

```
opsgate drift monitors
opsgate drift run [--monitor NAME]...
opsgate drift compare last-week.jsonl this-week.jsonl --field text [--json]
opsgate drift proposals [--status open]
opsgate drift accept PROPOSAL_ID | opsgate drift dismiss PROPOSAL_ID
```
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from opsgate.cache.embed import EmbedderUnavailableError, build_embedder
from opsgate.cli.client import DEFAULT_URL, UrlOpt, call, get_json
from opsgate.cli.tables import Column, print_table
from opsgate.cli.traces import JsonOpt
from opsgate.config.cache import EmbedderConfig
from opsgate.drift.compare import CompareInputError, compare, read_field

drift_app = typer.Typer(
    help="Drift monitors: list, run, compare files, proposals.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)
BASE = "/admin/v1/drift"


def register(app: typer.Typer) -> None:
    app.add_typer(drift_app, name="drift")


def _dump(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _num(value: float | None, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


@drift_app.command("monitors")
def monitors(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """The monitors (config file and API) with their latest state."""
    body = get_json(url, BASE + "/monitors")
    if as_json:
        _dump(body)
        return
    columns = (
        Column("name"),
        Column("kind"),
        Column("state"),
        Column("p-value", justify="right"),
        Column("ref/cur", 1, justify="right"),
        Column("window", 2, justify="right"),
        Column("source", 3),
    )
    rows = []
    for m in body["data"]:
        last = m.get("latest") or {}
        sizes = f"{last['n_ref']}/{last['n_cur']}" if last else "-"
        rows.append(
            (
                m["name"],
                m["kind"],
                m["state"] or "pending",
                _num(last.get("p_value")),
                sizes,
                f"{m['window']:g}s",
                m["source"],
            )
        )
    print_table(out, columns, rows)


@drift_app.command("run")
def run(
    monitor: Annotated[
        list[str] | None, typer.Option("--monitor", "-m", help="a monitor (default: all)")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate monitors now and print their new results."""
    body = call(url, "POST", BASE + "/run", {"monitors": monitor or None}, timeout=600)
    if as_json:
        _dump(body)
        return
    columns = (
        Column("monitor"),
        Column("state"),
        Column("p-value", justify="right"),
        Column("statistic", 1, justify="right"),
        Column("ref/cur", 1, justify="right"),
        Column("reason", 2, wrap=True),
    )
    rows = [
        (
            r["monitor"],
            r["state"],
            _num(r["p_value"]),
            _num(r["statistic"]),
            f"{r['n_ref']}/{r['n_cur']}",
            r["reason"] or "",
        )
        for r in body["data"]
    ]
    print_table(out, columns, rows)


@drift_app.command("proposals")
def proposals(
    status: Annotated[str | None, typer.Option(help="open, accepted or dismissed")] = "open",
    url: UrlOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Proposals left by monitors that entered drift."""
    body = get_json(url, BASE + "/proposals", [("status", status)])
    if as_json:
        _dump(body)
        return
    columns = (
        Column("id"),
        Column("monitor"),
        Column("kind"),
        Column("status"),
        Column("summary", 2, wrap=True),
    )
    rows = [
        (p["id"], p["monitor"], p["kind"], p["status"], p["detail"].get("summary", ""))
        for p in body["data"]
    ]
    print_table(out, columns, rows)


@drift_app.command("accept")
def accept(proposal_id: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Accept a proposal (creates its dataset, or refreshes the reference)."""
    _dump(call(url, "POST", f"{BASE}/proposals/{proposal_id}/accept", {}))


@drift_app.command("dismiss")
def dismiss(proposal_id: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Dismiss a proposal."""
    _dump(call(url, "POST", f"{BASE}/proposals/{proposal_id}/dismiss", {}))


@drift_app.command("compare")
def compare_files(
    reference: Annotated[Path, typer.Argument(help="JSON lines of the reference traffic")],
    current: Annotated[Path, typer.Argument(help="JSON lines of the traffic to check")],
    field: Annotated[
        str, typer.Option(help="the text field of each line (dots reach in)")
    ] = "text",
    embedder: Annotated[str, typer.Option(help="local (MiniLM), onnx or hashing")] = "local",
    max_rows: Annotated[int, typer.Option(min=2, max=5000, help="rows sampled per file")] = 1000,
    permutations: Annotated[int, typer.Option(min=19, max=9999)] = 199,
    alpha: Annotated[float, typer.Option(help="the false-alarm rate of the verdict")] = 0.01,
    as_json: JsonOpt = False,
) -> None:
    """Test whether two files' texts come from the same distribution (energy distance of
    their embeddings, permutation p-value) and show the topic clusters that differ most."""
    try:
        ref, cur = read_field(reference, field), read_field(current, field)
        built = build_embedder(EmbedderConfig(type=embedder))
    except (CompareInputError, EmbedderUnavailableError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    report = asyncio.run(compare(ref, cur, built, max_rows=max_rows, permutations=permutations))
    report["alpha"] = alpha
    report["drift"] = report["p_value"] <= alpha
    if as_json:
        _dump(report)
        return
    verdict = "DRIFT" if report["drift"] else "no drift detected"
    out.print(
        f"{verdict}: energy {report['statistic']:.4g}, p={report['p_value']:.3g} "
        f"(alpha {alpha}), effect {report['effect']:.3f}; "
        f"{report['n_ref']} vs {report['n_cur']} rows, {report['embedder']}",
        highlight=False,
    )
    columns = (
        Column("cluster", justify="right"),
        Column("reference", justify="right"),
        Column("current", justify="right"),
        Column("change", justify="right"),
        Column("examples", 1, wrap=True),
    )
    rows = [
        (
            str(c["cluster"]),
            f"{c['ref_share']:.0%}",
            f"{c['cur_share']:.0%}",
            f"{c['delta']:+.0%}",
            " | ".join(e[:80] for e in c["examples"]),
        )
        for c in report["clusters"][:5]
    ]
    print_table(out, columns, rows)
