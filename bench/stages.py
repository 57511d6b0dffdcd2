"""`python -m bench stages`: what each stage of the chat pipeline costs, in µs per request.

A real `Gateway` (SQLite in a temporary folder, tracing on, a master key, a virtual key with rate
limits and a budget, the fake upstream over loopback) serves JSON chat requests one at a time
in this process. Every stage of its chat pipeline is wrapped so that its *own* time is
measured: the time in the stage minus the time spent in the stages inside it (`call_next`).
The endpoint (route + provider + HTTP round trip to the upstream) is timed whole. The wrapper
adds about a microsecond per stage, included in the figures.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from bench.report import Grid
from bench.servers import MODEL, fake_upstream, request_body
from bench.stats import median, percentile
from opsgate.access.manage import AccessAdmin
from opsgate.access.models import BudgetIn, KeyCreate, LimitsIn
from opsgate.access.principal import MASTER
from opsgate.api.parse import parse_chat
from opsgate.config.loader import load_config
from opsgate.gateway import Gateway
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.pipeline import Pipeline

Next = Callable[[ChatCall], Awaitable[ChatResult]]


@dataclass(slots=True)
class Timed:
    """A stage, timed: its own seconds per call (time inside minus time in `call_next`)."""

    name: str
    stage: Any
    samples: list[float] = field(default_factory=list)

    async def __call__(self, call: ChatCall, call_next: Next) -> ChatResult:
        inner = 0.0

        async def timed_next(c: ChatCall) -> ChatResult:
            nonlocal inner
            t = time.perf_counter()
            try:
                return await call_next(c)
            finally:
                inner += time.perf_counter() - t

        t0 = time.perf_counter()
        result: ChatResult = await self.stage(call, timed_next)
        self.samples.append(time.perf_counter() - t0 - inner)
        return result


@dataclass(slots=True)
class TimedEndpoint:
    endpoint: Next
    samples: list[float] = field(default_factory=list)

    async def __call__(self, call: ChatCall) -> ChatResult:
        t0 = time.perf_counter()
        try:
            return await self.endpoint(call)
        finally:
            self.samples.append(time.perf_counter() - t0)


@dataclass(frozen=True, slots=True)
class StageRun:
    requests: int
    stages: list[tuple[str, float, float]]
    """(stage, median µs, p99 µs) in pipeline order."""
    endpoint: tuple[float, float]


def _config(folder: Path, upstream_url: str) -> Path:
    path = folder / "opsgate.yaml"
    path.write_text(
        f"models:\n  - name: {MODEL}\n    deployments:\n"
        f"      - {{provider: openai, base_url: {upstream_url}/v1, model: fake, api_key: x}}\n"
    )
    return path


async def _measure(config_path: Path, seconds: float) -> StageRun:
    gateway = Gateway(load_config(config_path), config_path=config_path)
    await gateway.start()
    try:
        limits = LimitsIn(rpm=10_000_000, tpm=1_000_000_000, max_parallel=10_000)
        budget = BudgetIn(max_usd=Decimal(1_000_000), period="monthly")
        _, secret = await AccessAdmin(gateway.access).create_key(
            MASTER, KeyCreate(limits=limits, budget=budget)
        )
        chat = gateway.runtime.chat
        timed = [Timed(type(s).__name__, s) for s in chat.stages]
        end = TimedEndpoint(chat.endpoint)
        pipeline: Pipeline[ChatCall, ChatResult] = Pipeline(timed, end)
        headers = {"authorization": f"Bearer {secret}", "x-opsgate-end-user": "bench-user"}
        body = orjson.loads(request_body())
        done = 0
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            await pipeline(ChatCall(RequestContext(headers=dict(headers)), parse_chat(body)))
            done += 1
            if done == 200:  # warm-up: caches, connections, the first trace batch
                for t in timed:
                    t.samples.clear()
                end.samples.clear()
        rows = [
            (t.name, median(t.samples) * 1e6, percentile(sorted(t.samples), 99) * 1e6)
            for t in timed
        ]
        ends = (median(end.samples) * 1e6, percentile(sorted(end.samples), 99) * 1e6)
        return StageRun(len(end.samples), rows, ends)
    finally:
        await gateway.aclose()


def run_stages(seconds: float = 10.0) -> StageRun:
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp, fake_upstream() as upstream:
        folder = Path(tmp)
        saved = {k: os.environ.get(k) for k in ("OPSGATE_MASTER_KEY", "OPSGATE_DATABASE_URL")}
        os.environ["OPSGATE_MASTER_KEY"] = "sk-bench-master"
        os.environ["OPSGATE_DATABASE_URL"] = f"sqlite:///{folder / 'opsgate.db'}"
        try:
            return asyncio.run(_measure(_config(folder, upstream.url), seconds))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def stages_grid(run: StageRun) -> Grid:
    grid = Grid(
        f"Chat pipeline, own time per stage (JSON, c=1, {run.requests:,} requests, "
        "key + limits + budget + traces)",
        ("stage", "median µs", "p99 µs"),
    )
    for name, p50, p99 in run.stages:
        grid.rows.append((name, f"{p50:,.1f}", f"{p99:,.1f}"))
    total = sum(p50 for _, p50, _ in run.stages)
    grid.rows.append(("all stages (sum of medians)", f"{total:,.1f}", ""))
    grid.rows.append(
        ("endpoint: route + provider + upstream round trip", f"{run.endpoint[0]:,.1f}",
         f"{run.endpoint[1]:,.1f}")
    )  # fmt: skip
    grid.notes.append(
        "Own time: time in the stage minus the time in the stages inside it; the HTTP server, "
        "body parsing and the response are outside the pipeline (see the hot-path table)."
    )
    return grid
