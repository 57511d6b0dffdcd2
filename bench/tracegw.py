"""What tracing costs the gateway: the same gateway with `traces: {enabled: false}` and with
tracing into SQLite and into PostgreSQL, side by side on one fake upstream, rounds interleaved."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import text

from bench.dbs import Backend
from bench.loadgen import run_load
from bench.measure import Progress, Settings, Summary, Target, measure
from bench.servers import CHAT_PATH, fake_upstream, gateway, request_body

TRACING_COST_TARGET = 0.10
"""Tracing may cost at most this share of the gateway's req/s (the issue's target)."""
OFF = "off"
SUSTAIN_S = 10
"""Seconds of load at c=32 for the does-the-writer-keep-up check."""
SUSTAIN_CONCURRENCY = 32
DRAIN_LIMIT_S = 60.0
WRITER_COUNTERS = (
    "opsgate_traces_written_total",
    "opsgate_traces_spilled_total",
    "opsgate_traces_dropped_total",
    "opsgate_trace_queue_depth",
)


@dataclass(frozen=True, slots=True)
class TracingRow:
    concurrency: int
    off: Summary
    on: dict[str, Summary]
    """Backend name -> the gateway tracing into it."""

    def ratio(self, backend: str) -> float:
        """Traced req/s as a share of untraced req/s."""
        return self.on[backend].rps / self.off.rps if self.off.rps else 0.0

    def added_p50_ms(self, backend: str) -> float:
        return self.on[backend].p50_ms - self.off.p50_ms


@dataclass(frozen=True, slots=True)
class Sustained:
    """One traced gateway under `SUSTAIN_S` s of steady load: does its writer keep up?"""

    backend: str
    rps: float
    """Requests/s the gateway served."""
    written_per_s: float
    """Traces/s its writer stored meanwhile (from `/metrics`)."""
    queue_end: float
    """Trace queue depth when the load stopped."""
    drain_s: float
    """Seconds until the queue was empty again."""
    spilled: float
    """Traces that went to the journal during the check (queue full or store down)."""


@dataclass(slots=True)
class TracingRun:
    settings: Settings
    rows: list[TracingRow] = field(default_factory=list)
    writer: dict[str, dict[str, float]] = field(default_factory=dict)
    """Backend -> writer metrics scraped from the gateway at the end."""
    stored: dict[str, int] = field(default_factory=dict)
    """Backend -> traces in its database after the gateway stopped (and drained)."""
    sustained: list[Sustained] = field(default_factory=list)

    def verdicts(self) -> list[tuple[str, str, bool]]:
        out = []
        for row in self.rows:
            for backend in row.on:
                cost = 1 - row.ratio(backend)
                out.append(
                    (
                        f"tracing ({backend}) costs < {TRACING_COST_TARGET:.0%} of req/s, "
                        f"JSON c={row.concurrency}",
                        f"{cost:+.1%}",
                        cost < TRACING_COST_TARGET,
                    )
                )
        return out


def _config(backend: Backend | None) -> str:
    if backend is None:
        return "traces:\n  enabled: false\n"
    return f"traces:\n  enabled: true\nsettings:\n  database_url: {backend.url}\n"


def _scrape(base_url: str) -> dict[str, float]:
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as resp:
        body = resp.read().decode()
    found: dict[str, float] = {}
    for line in body.splitlines():
        name, _, value = line.partition(" ")
        if name in WRITER_COUNTERS:
            found[name] = found.get(name, 0.0) + float(value)
    return found


def _queue_depth(base_url: str) -> float:
    return _scrape(base_url).get("opsgate_trace_queue_depth", 0.0)


def _wait_drained(base_url: str, limit: float = DRAIN_LIMIT_S) -> float:
    """Poll until the trace queue is empty (at most `limit` s); the seconds it took."""
    began = time.monotonic()
    while _queue_depth(base_url) > 0 and time.monotonic() - began < limit:
        time.sleep(0.2)
    return time.monotonic() - began


def _sustain(name: str, base_url: str, body: bytes, settings: Settings) -> Sustained:
    _wait_drained(base_url)
    before = _scrape(base_url)
    began = time.monotonic()
    load = run_load(
        base_url + CHAT_PATH, body, SUSTAIN_CONCURRENCY, SUSTAIN_S, client=settings.load_client
    )
    after = _scrape(base_url)
    elapsed = time.monotonic() - began
    drain_s = _wait_drained(base_url)
    final = _scrape(base_url)
    written = after.get("opsgate_traces_written_total", 0.0)
    written -= before.get("opsgate_traces_written_total", 0.0)
    spilled = final.get("opsgate_traces_spilled_total", 0.0)
    spilled -= before.get("opsgate_traces_spilled_total", 0.0)
    queue_end = after.get("opsgate_trace_queue_depth", 0.0)
    return Sustained(name, load.rps, written / elapsed, queue_end, drain_s, spilled)


async def _count_traces(url: str) -> int:
    from opsgate.store import make_engine
    from opsgate.store.db import dispose_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM traces"))).scalar_one())
    finally:
        await dispose_engine(engine)


def run_tracing(
    settings: Settings,
    backends: Sequence[Backend],
    concurrencies: Sequence[int] = (1, 32),
    server: str = "uvicorn",
    progress: Progress | None = None,
) -> TracingRun:
    run = TracingRun(settings)
    body = request_body()
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(fake_upstream())
        targets = [
            Target(
                OFF,
                stack.enter_context(gateway(upstream, server, extra_config=_config(None))).url
                + CHAT_PATH,
            )
        ]
        traced = {}
        for b in backends:
            gw = stack.enter_context(
                gateway(upstream, server, extra_config=_config(b), name=f"traces -> {b.name}")
            )
            traced[b.name] = gw
            targets.append(Target(b.name, gw.url + CHAT_PATH))
        for concurrency in concurrencies:
            got = measure(targets, body, concurrency, settings, progress)
            on = {b.name: got[b.name] for b in backends}
            run.rows.append(TracingRow(concurrency, got[OFF], on))
        for name, gw in traced.items():
            if progress:
                progress(f"sustained {SUSTAIN_S} s at c={SUSTAIN_CONCURRENCY}, traces -> {name}")
            run.sustained.append(_sustain(name, gw.url, body, settings))
            run.writer[name] = _scrape(gw.url)
            gw.stop()  # graceful: the writer drains before the process exits
    for b in backends:
        run.stored[b.name] = asyncio.run(_count_traces(b.url))
    return run
