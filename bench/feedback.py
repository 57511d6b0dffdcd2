"""Feedback (`python -m bench feedback`): what `POST /v1/feedback` sustains, and what feedback
costs the chat path.

1. Latency and throughput of `POST /v1/feedback`, one score per request, on a gateway writing
   scores to SQLite and one writing to PostgreSQL, at c=1 and c=32, beside the floor of the same
   gateway answering a POST to an unknown path (routing, middleware, the load generator; no
   feedback work). Rounds interleaved.
2. Sustained, per backend: single scores at c=32 and batches of 100 scores (100 different
   traces) at c=4 for `SUSTAIN_S` s each. Accepted scores/s, scores/s the writer stored over
   the same time (from `/metrics`), refusals (503 when the queue is full: the writer is behind),
   how long the queue took to drain, and the rows in the database against the scores accepted
   (none may be missing).
3. Chat at c=1 and c=32 with feedback on (a token on every answer, the recent-trace index) and
   off, same gateway otherwise: the ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from rich.console import Console
from sqlalchemy import text

from bench.dbs import Backend, backends
from bench.loadgen import LoadResult, run_load
from bench.measure import Settings, Summary, Target, measure
from bench.procs import Server
from bench.report import Grid, grids_markdown, ms, rps
from bench.servers import CHAT_PATH, fake_upstream, gateway, request_body
from bench.stats import median

FEEDBACK_PATH = "/v1/feedback"
SINGLE_TARGET_RPS = 2_000
P50_TARGET_MS = 2.0
SUSTAIN_S = 10
BATCH = 100
METRICS = (
    "feedback:\n"
    "  metrics:\n"
    "    thumbs: {type: boolean}\n"
    "    rating: {type: float, min: 1, max: 5}\n"
    "  flush_interval: 0.1\n"
)


@dataclass(slots=True)
class FeedbackRun:
    settings: Settings
    single: dict[int, dict[str, Summary]] = field(default_factory=dict)
    """Concurrency -> backend -> single-score requests."""
    sustained: list[tuple[str, str, dict[str, float]]] = field(default_factory=list)
    """(load, backend, figures) of each sustained run."""
    chat: dict[int, dict[str, Summary]] = field(default_factory=dict)
    """Concurrency -> "off" / "on" -> chat requests."""


def _config(backend: Backend) -> str:
    return f"settings:\n  database_url: {backend.url}\n{METRICS}"


def _answers(server: Server, count: int) -> list[str]:
    """Trace ids of `count` chat answers (and check each carries a feedback token)."""
    ids = []
    for _ in range(count):
        req = urllib.request.Request(
            server.url + CHAT_PATH,
            data=request_body(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
            if not resp.headers.get("x-opsgate-feedback-token"):
                raise RuntimeError("the gateway gave no feedback token: is feedback configured?")
            ids.append(resp.headers["x-opsgate-trace-id"])
    return ids


def _scrape(server: Server) -> dict[str, float]:
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        lines = resp.read().decode().splitlines()
    found: dict[str, float] = {}
    for line in lines:
        name, _, value = line.partition(" ")
        if name.startswith(("opsgate_feedback_", "opsgate_trace_queue_depth")):
            found[name] = found.get(name, 0.0) + float(value)
    return found


def _accepted(found: dict[str, float]) -> float:
    return sum(v for k, v in found.items() if k.startswith("opsgate_feedback_scores_total"))


def _drain(server: Server, limit: float = 60.0) -> float:
    began = time.monotonic()
    while time.monotonic() - began < limit:
        if _scrape(server).get("opsgate_feedback_queue_depth", 0.0) == 0:
            break
        time.sleep(0.1)
    return time.monotonic() - began


async def _count(url: str) -> int:
    from opsgate.store import dispose_engine, make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM scores"))).scalar_one())
    finally:
        await dispose_engine(engine)


def _sustain(
    server: Server, body: bytes, per_request: int, concurrency: int, db: Backend, settings: Settings
) -> dict[str, float]:
    _drain(server)
    before = _scrape(server)
    began = time.monotonic()
    url = server.url + FEEDBACK_PATH
    load = run_load(url, body, concurrency, SUSTAIN_S, client=settings.load_client)
    after = _scrape(server)
    elapsed = time.monotonic() - began
    drain_s = _drain(server)
    written = after.get("opsgate_feedback_written_total", 0.0)
    written -= before.get("opsgate_feedback_written_total", 0.0)
    return {
        "rps": load.rps,
        "accepted_per_s": load.rps * per_request,
        "refused": float(load.errors),
        "written_per_s": written / elapsed,
        "drain_s": drain_s,
        "accepted": _accepted(_scrape(server)),
        "stored": float(asyncio.run(_count(db.url))),
    }


def run_feedback(settings: Settings, with_pg: bool, progress: Callable[[str], None]) -> FeedbackRun:
    run = FeedbackRun(settings)
    with contextlib.ExitStack() as stack:
        dbs = stack.enter_context(backends(with_pg, label="feedback"))
        upstream = stack.enter_context(fake_upstream())
        servers = {
            db.name: stack.enter_context(
                gateway(upstream, extra_config=_config(db), name=f"feedback -> {db.name}")
            )
            for db in dbs
        }
        progress("making answers to score")
        traces = {name: _answers(server, BATCH) for name, server in servers.items()}
        single = {
            name: orjson.dumps({"trace_id": ids[0], "metric": "thumbs", "value": True})
            for name, ids in traces.items()
        }
        batches = {
            name: orjson.dumps(
                {"scores": [{"trace_id": t, "metric": "rating", "value": 4} for t in ids]}
            )
            for name, ids in traces.items()
        }
        url = {name: server.url + FEEDBACK_PATH for name, server in servers.items()}
        # The floor: the same gateway answering a POST to an unknown path (404: routing,
        # middleware and the load generator, no feedback work), counted as answers/s.
        floor = (FLOOR, servers[dbs[0].name].url + "/v1/unknown", single[dbs[0].name])
        for concurrency in (1, 32):
            loads = [(name, url[name], body) for name, body in single.items()]
            run.single[concurrency] = _rounds([*loads, floor], concurrency, settings, progress)
        for db in dbs:
            for label, body, per, conc in (
                ("1 score per request, c=32", single[db.name], 1, 32),
                (f"{BATCH} scores per request, c=4", batches[db.name], BATCH, 4),
            ):
                progress(f"sustained {SUSTAIN_S} s, {label} -> {db.name}")
                got = _sustain(servers[db.name], body, per, conc, db, settings)
                run.sustained.append((label, db.name, got))
        for server in servers.values():
            server.stop()
        progress("chat with feedback off and on")
        run.chat = _chat(upstream, dbs[0], settings, progress)
    return run


Load = tuple[str, str, bytes]
"""(name, URL, body) of one load target."""
FLOOR = "floor"


def _rounds(
    loads: list[Load], concurrency: int, settings: Settings, progress: Callable[[str], None]
) -> dict[str, Summary]:
    """Warm each target, then run round k of every target before round k+1 of any (each
    target posts its own body, which `bench.measure` cannot do)."""
    out: dict[str, list[LoadResult]] = {name: [] for name, _, _ in loads}
    client = settings.load_client
    for _, url, body in loads:
        run_load(url, body, concurrency, settings.warmup, client=client)
    for k in range(settings.rounds):
        for name, url, body in loads:
            progress(f"round {k + 1}/{settings.rounds} {name} c={concurrency}")
            out[name].append(run_load(url, body, concurrency, settings.seconds, client=client))
    return {name: Summary(tuple(results)) for name, results in out.items()}


def _chat(
    upstream: Server, db: Backend, settings: Settings, progress: Callable[[str], None]
) -> dict[int, dict[str, Summary]]:
    base = f"settings:\n  database_url: {db.url}\n"
    with contextlib.ExitStack() as stack:
        off = stack.enter_context(gateway(upstream, extra_config=base, name="feedback off"))
        on = stack.enter_context(gateway(upstream, extra_config=base + METRICS, name="feedback on"))
        targets = [Target("off", off.url + CHAT_PATH), Target("on", on.url + CHAT_PATH)]
        return {c: measure(targets, request_body(), c, settings, progress) for c in (1, 32)}


def feedback_grids(run: FeedbackRun) -> list[Grid]:
    s = run.settings
    grid = Grid(
        f"POST /v1/feedback, 1 score per request: medians of {s.rounds} x {s.seconds:g} s, "
        "latencies in ms",
        ("load", "backend", "req/s", "p50", "p99", "errors"),
    )
    for concurrency, by_backend in run.single.items():
        for name, got in by_backend.items():
            if name == FLOOR:
                answered = median([(r.requests + r.errors) / r.seconds for r in got.rounds])
                grid.rows.append((f"404 floor, c={concurrency}", "-", rps(answered), "-", "-", "-"))
                continue
            row = (f"c={concurrency}", name, rps(got.rps), ms(got.p50_ms), ms(got.p99_ms))
            grid.rows.append((*row, str(got.errors)))
    sustained = Grid(
        f"Sustained for {SUSTAIN_S} s each: scores accepted, and stored by the writer meanwhile",
        (
            "load",
            "backend",
            "req/s",
            "accepted/s",
            "stored/s",
            "503s",
            "drain s",
            "accepted",
            "in database",
        ),
    )
    for label, name, kept in run.sustained:
        sustained.rows.append(
            (
                label,
                name,
                rps(kept["rps"]),
                rps(kept["accepted_per_s"]),
                rps(kept["written_per_s"]),
                f"{kept['refused']:.0f}",
                f"{kept['drain_s']:.1f}",
                f"{kept['accepted']:.0f}",
                f"{kept['stored']:.0f}",
            )
        )
    chat = Grid(
        "Chat with feedback on (token per answer, recent-trace index) vs off",
        ("conc.", "off req/s", "on req/s", "on/off", "off p50", "on p50"),
    )
    for concurrency, pair in run.chat.items():
        off, on = pair["off"], pair["on"]
        ratio = f"{on.rps / off.rps:.2f}" if off.rps else "-"
        chat.rows.append(
            (str(concurrency), rps(off.rps), rps(on.rps), ratio, ms(off.p50_ms), ms(on.p50_ms))
        )
    stored = max((kept["written_per_s"] for _, _, kept in run.sustained), default=0.0)
    p50 = max((g.p50_ms for n, g in run.single.get(1, {}).items() if n != FLOOR), default=0.0)
    sustained.notes.append(
        f"targets: >= {SINGLE_TARGET_RPS:,} scores/s sustained, p50 < {P50_TARGET_MS} ms; "
        f"best stored {stored:,.0f} scores/s; c=1 p50 (worst backend) {p50:.2f} ms"
    )
    return [grid, sustained, chat]


def main_feedback(args: Any, note: str, console: Console, progress: Callable[[str], None]) -> None:
    from bench.docs import update_section

    settings = Settings(
        rounds=max(1, args.rounds),
        seconds=max(1, args.seconds),
        warmup=max(1, args.warmup),
        load_client=args.load_client,
    )
    grids = feedback_grids(run_feedback(settings, not args.no_pg, progress))
    for grid in grids:
        grid.rich(console)
    if not args.no_docs:
        title = "## Feedback (`python -m bench feedback`)"
        update_section("feedback", "\n".join([title, "", note, *grids_markdown(grids)]))
