"""Dashboard page render times over many traces (`python -m bench ui --rows 1000000`).

Loads `rows` synthetic traces over the last 30 days into a fresh SQLite file (the bulk path of
`bench.bulkload`: the store's own rows, inserted with `sqlite3`), starts the real gateway app
on it in this process (its lifespan, then httpx's ASGI transport: no network, no server),
logs in with the master key and times each page from request to the last byte: one warm-up,
then the median of `repeats` runs. The target is < 300 ms per page.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.bulkload import SqliteLoader, to_rows
from bench.querytiming import Timing, timed
from bench.report import Grid
from bench.synthetic import TraceFactory, spread
from opsgate.app import create_app
from opsgate.config import parse_config
from opsgate.store.migrate import upgrade

CHUNK = 20_000
MASTER = "bench-ui-master-key"
TARGET_MS = 300.0
Progress = Callable[[str], None]


@dataclass(slots=True)
class UiRun:
    rows: int
    load_s: float = 0.0
    timings: list[Timing] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    """Bytes of HTML per page."""


def _load(path: Path, rows: int, end: float, progress: Progress | None) -> None:
    """`rows` traces spread over the 30 days before `end`, each chunk over its own minutes."""
    factory = TraceFactory(seed=7)
    loader = SqliteLoader(path)
    try:
        for part in spread(rows, end, CHUNK):
            loader.load(to_rows(part.records(factory)))
            if progress and (part.index % 10 == 0 or part.index == part.of - 1):
                progress(f"loaded {min(rows, (part.index + 1) * CHUNK):,} of {rows:,} traces")
    finally:
        loader.close()


def _pages(trace_id: str) -> list[tuple[str, str]]:
    return [
        ("overview, last hour", "/ui/overview?range=1h"),
        ("overview, 24 h (default)", "/ui/overview"),
        ("overview, 7 d", "/ui/overview?range=7d"),
        ("overview, 30 d", "/ui/overview?range=30d"),
        ("overview, 7 d, team = team-03", "/ui/overview?range=7d&team_id=team-03"),
        ("overview end-user panel, 24 h", "/ui/overview/end-users?range=24h"),
        ("overview end-user panel, 7 d", "/ui/overview/end-users?range=7d"),
        ("traces, newest 50", "/ui/traces"),
        ("traces, model = gpt-4o, 24 h", "/ui/traces?model=gpt-4o&since=24h"),
        ("traces, errors, 7 d", "/ui/traces?status=error&since=7d"),
        ("traces, metadata app = app-3", "/ui/traces?metadata=app%3Aapp-3"),
        ("trace detail", f"/ui/traces/{trace_id}"),
        ("keys & budgets", "/ui/keys"),
        ("models (1 h of stats)", "/ui/models"),
    ]


async def _login(http: httpx.AsyncClient) -> None:
    form = await http.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, "login form without a CSRF field"
    resp = await http.post("/ui/login", data={"key": MASTER, "csrf_token": token.group(1)})
    if resp.status_code != 303:
        raise RuntimeError(f"dashboard login failed: {resp.status_code} {resp.text[:200]}")


async def _time_pages(db: Path, repeats: int, run: UiRun, progress: Progress | None) -> None:
    config = parse_config(
        {"traces": {"enabled": True}},
        source="<bench ui>",
        env={"OPSGATE_DATABASE_URL": f"sqlite:///{db}", "OPSGATE_MASTER_KEY": MASTER},
    )
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as http,
    ):
        await _login(http)
        listing = await http.get("/ui/traces?limit=1")
        found = re.search(r"/ui/traces/([0-9a-f]{32})", listing.text)
        if found is None:
            raise RuntimeError("no trace in the loaded database")
        for name, path in _pages(found.group(1)):
            if progress:
                progress(f"timing {name}")

            async def one(path: str = path, name: str = name) -> int:
                resp = await http.get(path)
                if resp.status_code != 200:
                    raise RuntimeError(f"{path}: {resp.status_code} {resp.text[:300]}")
                run.sizes[name] = len(resp.content)
                return 1

            run.timings.append(await timed(name, "sqlite", repeats, one))


async def _run(rows: int, repeats: int, progress: Progress | None) -> UiRun:
    run = UiRun(rows)
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        db = Path(tmp) / "opsgate.db"
        await upgrade(f"sqlite:///{db}")
        began = time.perf_counter()
        _load(db, rows, time.time() // 60 * 60, progress)
        run.load_s = time.perf_counter() - began
        await _time_pages(db, repeats, run, progress)
    return run


def run_ui(rows: int, repeats: int = 7, progress: Progress | None = None) -> UiRun:
    return asyncio.run(_run(rows, repeats, progress))


def ui_grids(run: UiRun) -> list[Grid]:
    rows: list[tuple[str, ...]] = [
        (
            t.query,
            f"{t.median_ms:.1f}",
            f"{max(t.runs_ms):.1f}",
            f"{run.sizes.get(t.query, 0) / 1024:.1f}",
            "yes" if t.median_ms < TARGET_MS else "NO",
        )
        for t in run.timings
    ]
    title = f"Dashboard pages over {run.rows:,} traces (SQLite), ms: median of the timed runs"
    grid = Grid(title, ("page", "median ms", "slowest ms", "KiB", "< 300 ms"), rows)
    grid.notes.append(f"loading the traces took {run.load_s:.0f} s")
    return [grid]


def ui_markdown(run: UiRun, note: str) -> str:
    grid = ui_grids(run)[0]
    return "\n\n".join(
        [
            "## Dashboard page render times (`python -m bench ui`)",
            note,
            "Method: "
            + (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip()
            + f" Traces: {run.rows:,} (`bench.synthetic`), loaded in {run.load_s:.0f} s.",
            f"### {grid.title}",
            grid.markdown(),
        ]
    )
