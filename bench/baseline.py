"""`python -m bench baseline --ref REF`: this tree's gateway against the gateway of an earlier
commit, interleaved in one run against the same fake upstream (with the direct upstream as the
floor). It answers "did this change cost anything?" without comparing runs made at different
times on a shared machine.

The earlier commit is checked out with `git worktree` into a temporary folder and served from
there (`python -m opsgate serve`, its `src/` first on PYTHONPATH), with this venv's packages.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.measure import Progress, Settings, Summary, Target, measure
from bench.procs import REPO_ROOT, Server, clean_env, free_port, serve
from bench.report import Grid
from bench.servers import CHAT_PATH, MODEL, fake_upstream, gateway, request_body

CONCURRENCIES = (1, 32)


@dataclass(frozen=True, slots=True)
class Row:
    concurrency: int
    direct: Summary
    head: Summary
    base: Summary


@contextlib.contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """A detached checkout of `ref`, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        path = Path(tmp) / "tree"
        git = ["git", "-C", str(REPO_ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", str(path), ref], check=True,
                       capture_output=True)  # fmt: skip
        try:
            yield path
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=False,
                           capture_output=True)  # fmt: skip


@contextlib.contextmanager
def old_gateway(upstream: Server, tree: Path) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="bench-gateway-base-") as tmp:
        config = Path(tmp) / "opsgate.yaml"
        config.write_text(
            f"models:\n  - name: {MODEL}\n    deployments:\n"
            f"      - {{provider: openai, base_url: {upstream.url}/v1, model: fake, api_key: x}}\n"
        )
        port = free_port()
        env = clean_env({"OPSGATE_CONFIG": str(config)})
        env["PYTHONPATH"] = f"{tree / 'src'}:{env['PYTHONPATH']}"
        argv = [sys.executable, "-m", "opsgate", "serve", "--config", str(config),
                "--port", str(port), "--log-level", "warning"]  # fmt: skip
        with serve("gateway (baseline)", argv, port, "/healthz", env=env, cwd=Path(tmp)) as gw:
            yield gw


def run_baseline(
    ref: str,
    settings: Settings,
    progress: Progress | None = None,
    concurrencies: tuple[int, ...] = CONCURRENCIES,
    delay_ms: float = 0.0,
) -> list[Row]:
    rows: list[Row] = []
    with contextlib.ExitStack() as running:
        tree = running.enter_context(worktree(ref))
        upstream = running.enter_context(fake_upstream(delay_ms))
        head = running.enter_context(gateway(upstream, name="this tree"))
        base = running.enter_context(old_gateway(upstream, tree))
        targets = [
            Target("direct", upstream.url + CHAT_PATH),
            Target("head", head.url + CHAT_PATH, pid=head.pid),
            Target("base", base.url + CHAT_PATH, pid=base.pid),
        ]
        body = request_body()
        for c in concurrencies:
            got = measure(targets, body, c, settings, progress)
            rows.append(Row(c, got["direct"], got["head"], got["base"]))
    return rows


def baseline_grid(ref: str, rows: list[Row], delay_ms: float = 0.0) -> Grid:
    delay = f", upstream delay {delay_ms:g} ms" if delay_ms else ""
    grid = Grid(
        f"This tree vs {ref} (JSON{delay}, same run, medians over rounds)",
        (
            "c",
            "direct req/s",
            f"{ref} req/s",
            "this tree req/s",
            "ratio",
            f"{ref} added p50",
            "this tree added p50",
            f"{ref} CPU µs/req",
            "this tree CPU µs/req",
        ),
    )
    for r in rows:
        grid.rows.append(
            (
                str(r.concurrency),
                f"{r.direct.rps:,.0f}",
                f"{r.base.rps:,.0f}",
                f"{r.head.rps:,.0f}",
                f"{r.head.rps / r.base.rps:.2f}" if r.base.rps else "-",
                f"{r.base.p50_ms - r.direct.p50_ms:+.3f} ms",
                f"{r.head.p50_ms - r.direct.p50_ms:+.3f} ms",
                _us(r.base.cpu_us),
                _us(r.head.cpu_us),
            )
        )
    grid.notes.append("ratio = this tree's req/s over the baseline's: 1.00 is no change.")
    grid.notes.append(
        "CPU µs/req = the gateway process's CPU time (all threads) over the requests it served"
        " in a round, median of rounds: the figure other load on the machine moves least."
    )
    return grid


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
