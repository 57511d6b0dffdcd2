"""Tables: one row model, rendered to the terminal (rich) and to Markdown (docs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from bench.choices import ChoicesRun
from bench.gateway import GatewayRun


@dataclass(frozen=True, slots=True)
class Grid:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def rich(self, console: Console) -> None:
        table = Table(title=self.title, title_justify="left")
        for i, header in enumerate(self.headers):
            table.add_column(header, justify="left" if i == 0 else "right")
        for row in self.rows:
            table.add_row(*row)
        console.print(table)
        for note in self.notes:
            console.print(f"  {note}", highlight=False)

    def markdown(self) -> str:
        lines = [
            "| " + " | ".join(self.headers) + " |",
            "| " + " | ".join(["---"] + ["---:"] * (len(self.headers) - 1)) + " |",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def grids_markdown(grids: Iterable[Grid]) -> list[str]:
    """Each grid as a bold title, its table and its notes in italics (docs sections)."""
    parts: list[str] = []
    for grid in grids:
        parts += ["", f"**{grid.title}**", "", grid.markdown()]
        parts += [f"\n_{n}_" for n in grid.notes]
    return parts


def pct(value: float) -> str:
    """A share as a percentage with one decimal; "-" for NaN (nothing to rate)."""
    return "-" if value != value else f"{100 * value:.1f}%"


def rps(value: float) -> str:
    return f"{value:,.0f}"


def ms(value: float) -> str:
    return f"{value:.2f}"


def gateway_grids(run: GatewayRun) -> list[Grid]:
    s = run.settings
    with_bare = any(c.bare is not None for c in run.comparisons)
    headers = ["request", "conc.", "direct req/s"]
    headers += ["bare req/s"] if with_bare else []
    headers += ["gateway req/s", "gw/direct"]
    headers += ["gw/bare"] if with_bare else []
    headers += ["direct p50"] + (["bare p50"] if with_bare else [])
    headers += ["gateway p50", "added p50", "direct p99", "gateway p99"]
    main = Grid(
        f"Gateway ({run.server}) vs direct upstream: medians of {s.rounds} x {s.seconds:g} s,"
        " latencies in ms",
        tuple(headers),
    )
    for c in run.comparisons:
        bare = c.bare
        row = [c.scenario.label, str(c.scenario.concurrency), rps(c.direct.rps)]
        row += [rps(bare.rps) if bare else "-"] if with_bare else []
        row += [rps(c.gateway.rps), f"{c.ratio:.2f}"]
        row += [f"{c.bare_ratio:.2f}" if c.bare_ratio is not None else "-"] if with_bare else []
        row += [ms(c.direct.p50_ms)] + ([ms(bare.p50_ms) if bare else "-"] if with_bare else [])
        row += [ms(c.gateway.p50_ms), f"{c.added_p50_ms:+.2f}"]
        row += [ms(c.direct.p99_ms), ms(c.gateway.p99_ms)]
        main.rows.append(tuple(row))
        errors = c.direct.errors + c.gateway.errors + (bare.errors if bare else 0)
        if errors:
            main.notes.append(f"{c.scenario.label} c={c.scenario.concurrency}: {errors} errors")
    targets = Grid("Targets", ("target", "measured", "met"))
    for name, measured, met in run.verdicts():
        targets.rows.append((name, measured, "yes" if met else "NO"))
    return [main, targets]


def print_grids(grids: Sequence[Grid], console: Console) -> None:
    for grid in grids:
        grid.rich(console)
        console.print()


def _method(settings_line: str, note: str) -> str:
    return f"{note}\n\n{settings_line}"


def gateway_markdown(run: GatewayRun, note: str) -> str:
    s = run.settings
    main, targets = gateway_grids(run)
    settings_line = (
        f"Method: fake upstream (raw ASGI app on uvicorn + uvloop + httptools, fixed "
        f"`chat.completion` / 6-event SSE body) and the gateway ({run.server}, 1 worker) as "
        f"subprocesses on free loopback ports; the load generator is its own process. Per row "
        f"and target: {s.warmup:g} s warm-up, then {s.rounds} rounds of {s.seconds:g} s, direct "
        f"and gateway rounds interleaved; each figure is the median over rounds (p50/p99 are "
        f"per-round latency percentiles). `added p50` = gateway p50 - direct p50. `bare` is "
        f"`bench.bareproxy`: a raw ASGI app on the same uvicorn that forwards the body with one "
        f"pooled aiohttp session and nothing else, i.e. the cost of any single-process Python "
        f"proxy on this stack; `gw/bare` is the share of that ceiling the gateway reaches."
    )
    return "\n\n".join(
        [
            "## Gateway overhead (`python -m bench gateway`)",
            _method(settings_line, note),
            main.markdown(),
            "Targets (from the issue):",
            targets.markdown(),
        ]
    )


def choices_grids(run: ChoicesRun) -> list[Grid]:
    servers = Grid(
        "ASGI server for the gateway (through the gateway, same upstream, interleaved)",
        ("request", "conc.", "server", "req/s", "p50 ms", "p99 ms", "req/s vs uvicorn"),
    )
    for row in run.servers:
        base = row.by_server.get("uvicorn")
        for name, got in row.by_server.items():
            rel = got.rps / base.rps if base and base.rps else 0.0
            servers.rows.append(
                (
                    row.scenario.label,
                    str(row.scenario.concurrency),
                    name,
                    rps(got.rps),
                    ms(got.p50_ms),
                    ms(got.p99_ms),
                    f"{rel:.2f}",
                )
            )
    clients = Grid(
        "Upstream HTTP client (Python client process -> fake upstream, c=32)",
        ("client", "req/s", "p50 ms", "p99 ms", "req/s vs aiohttp"),
    )
    base_client = run.clients.get("aiohttp")
    for name, got in run.clients.items():
        rel = got.rps / base_client.rps if base_client and base_client.rps else 0.0
        clients.rows.append((name, rps(got.rps), ms(got.p50_ms), ms(got.p99_ms), f"{rel:.2f}"))
    json_grid = Grid(
        "JSON (median µs per call, typical bodies)",
        ("operation", "stdlib json µs", "orjson µs", "orjson speed-up"),
    )
    for j in run.json:
        json_grid.rows.append(
            (j.case, f"{j.stdlib_us:.2f}", f"{j.orjson_us:.2f}", f"{j.speedup:.1f}x")
        )
    return [servers, clients, json_grid]


def choices_markdown(run: ChoicesRun, note: str) -> str:
    s = run.settings
    servers, clients, json_grid = choices_grids(run)
    settings_line = (
        f"Method: as for the gateway benchmark ({s.warmup:g} s warm-up, {s.rounds} interleaved "
        f"rounds of {s.seconds:g} s, medians). Servers: both gateways run side by side on one "
        "fake upstream (uvicorn via `opsgate serve`; granian via `granian --interface asgi "
        "--factory --loop uvloop opsgate.app:app_from_env`), 1 worker each. Clients: "
        "`bench.client` with one pooled session per process (aiohttp `ClientSession`, httpx "
        "`AsyncClient` with 32 connections) posting the chat request to the fake upstream. "
        "JSON: `timeit`, median of 7 repeats."
    )
    return "\n\n".join(
        [
            "## Design choices made by measurement (`python -m bench choices`)",
            _method(settings_line, note),
            f"### {servers.title}",
            servers.markdown(),
            f"### {clients.title}",
            clients.markdown(),
            f"### {json_grid.title}",
            json_grid.markdown(),
        ]
    )
