"""`python -m bench online`: what online scoring costs the gateway's throughput.

Three gateways in front of the one fast fake upstream, the same config but for `evals.online`
(feedback metrics declared in all three, the exact cache off so every answer comes from the
upstream, as live traffic mostly does):

- **off**: no online rules;
- **detector 5%**: 5% of answers scored by the local hallucination detector;
- **detector + judge 5%**: the same 5% also judged for faithfulness by a gateway model (the fake
  upstream, whose answer is no judge verdict: each judgement is asked twice and fails, so a
  sampled answer costs two in-process judge calls: a pessimistic case).

Each is loaded at c=32 in interleaved rounds (only one under load at a time); the table gives
median req/s, its ratio to **off** (target: online scoring at 5% costs < 3% of throughput) and,
from each gateway's `/metrics`, how many answers were drawn and scored.

On a shared two-core box the rounds' req/s are noisy (other work takes the cores), so the cost
is also measured in ways that noise hardly moves: the **gateway's own CPU time per request**
(user + system time of the gateway's process group over each round, from /proc, divided by the
requests the round served: a CPU-bound gateway's throughput is its inverse), and the event-loop
time `OnlineEvaluator.score` takes per drawn answer in process (detector, then recording through
a real `FeedbackService` on SQLite), times the rate, times the **off** gateway's req/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orjson import loads as orjson_loads
from rich.console import Console

from bench.loadgen import LoadResult, run_load
from bench.measure import Settings
from bench.procs import Server, group_cpu_s
from bench.report import Grid, grids_markdown
from bench.servers import CHAT_PATH, MODEL, fake_upstream, gateway, request_body
from bench.stats import median, percentile
from opsgate.config.evals import EvalsConfig
from opsgate.config.feedback import FeedbackConfig
from opsgate.evals.online import OnlineEvaluator, sample_from
from opsgate.feedback.service import FeedbackService
from opsgate.store import dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from opsgate.trace import TraceRecord

Progress = Callable[[str], None]
ANSWER = "Hello! How can I help you today?"  # what bench.upstream answers
CONCURRENCY = 32
RATE = 0.05
TARGET = 0.97
BASE = """cache: {enabled: false}
feedback:
  metrics:
    hallucination: {type: boolean, optimize: min}
    faithfulness: {type: float, min: 0, max: 1}
"""
CONFIGS = {
    "off": BASE,
    "detector 5%": BASE
    + f"evals:\n  online:\n    - {{model: {MODEL}, sample: {RATE}, scorers: [hallucination]}}\n",
    "detector + judge 5%": BASE + f"evals:\n  judge_model: {MODEL}\n  online:\n"
    f"    - {{model: {MODEL}, sample: {RATE}, scorers: [hallucination, faithfulness]}}\n",
}


@dataclass(slots=True)
class OnlineRun:
    settings: Settings
    rounds: dict[str, list[LoadResult]] = field(default_factory=dict)
    drawn: dict[str, float] = field(default_factory=dict)
    scored: dict[str, float] = field(default_factory=dict)
    requests: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    """The gateway's CPU milliseconds per served request, per round."""
    score_us: list[float] = field(default_factory=list)
    score_cpu_us: float = 0.0
    """Event-loop µs per drawn answer: the detector and recording the score."""

    def rps(self, name: str) -> float:
        return median([r.rps for r in self.rounds[name]])

    def cpu(self, name: str) -> float:
        return median(self.cpu_ms[name])

    def cpu_ratio(self, name: str) -> float:
        off = self.cpu("off")
        return self.cpu(name) / off if off else 0.0

    def ratio(self, name: str) -> float:
        off = self.rps("off")
        return self.rps(name) / off if off else 0.0


def _metric(text: str, name: str, labels: str = "") -> float:
    """The sum of a counter's samples whose labels contain `labels`."""
    total = 0.0
    for match in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE):
        if labels in (match.group(1) or ""):
            total += float(match.group(2))
    return total


def _metrics(server: Server) -> str:
    with urllib.request.urlopen(server.url + "/metrics", timeout=30) as resp:
        body: bytes = resp.read()
    return body.decode()


async def _score_times(answers: int = 3000) -> tuple[list[float], float]:
    """µs of the event loop per `OnlineEvaluator.score` of one answer (the hallucination
    detector, the score handed to a real FeedbackService), and the process's CPU µs per answer
    with everything around it (the draw, the sample, the score writer's SQLite thread)."""
    metrics = {"hallucination": {"type": "boolean", "optimize": "min"}}
    config = FeedbackConfig.model_validate({"metrics": metrics})
    rule = {"model": MODEL, "sample": 1.0, "scorers": ["hallucination"]}
    evals = EvalsConfig.model_validate({"online": [rule]})
    request = orjson_loads(request_body())
    with tempfile.TemporaryDirectory(prefix="bench-online-") as tmp:
        url = f"sqlite:///{tmp}/online.db"
        await upgrade(url)
        engine = make_engine(url)
        feedback = FeedbackService(config, engine)
        await feedback.start(None)
        online = OnlineEvaluator(evals, config.metrics, feedback, rng=lambda: 0.0)
        out = []
        cpu0 = time.process_time()
        try:
            for i in range(answers):
                trace = TraceRecord(f"{i:032x}", time.time(), 10.0, "chat", MODEL)
                feedback.observe(trace)
                draw = online.draw(trace)
                assert draw is not None
                sample = sample_from(request, ANSWER)
                t0 = time.perf_counter_ns()
                await online.score(trace.trace_id, draw, sample)
                out.append((time.perf_counter_ns() - t0) / 1000)
            await feedback.writer.flush()
            cpu_us = (time.process_time() - cpu0) * 1e6 / answers
            assert online.stats.recorded == answers, online.stats
        finally:
            await online.aclose()
            await feedback.aclose()
            await dispose_engine(engine)
    return out[answers // 10 :], cpu_us  # the loop times after a warm-up


def run_online(settings: Settings, progress: Progress) -> OnlineRun:
    run = OnlineRun(settings, {name: [] for name in CONFIGS}, cpu_ms={n: [] for n in CONFIGS})
    progress("in-process: online scoring time per drawn answer")
    run.score_us, run.score_cpu_us = asyncio.run(_score_times())
    body = request_body()
    with contextlib.ExitStack() as running:
        upstream = running.enter_context(fake_upstream())
        servers: dict[str, Any] = {
            name: running.enter_context(gateway(upstream, extra_config=extra, name=name))
            for name, extra in CONFIGS.items()
        }
        for name, server in servers.items():
            progress(f"warm-up {name} c={CONCURRENCY}")
            url = server.url + CHAT_PATH
            run_load(url, body, CONCURRENCY, settings.warmup, client=settings.load_client)
        for k in range(settings.rounds):
            order = list(servers.items())
            order = order[k % len(order) :] + order[: k % len(order)]
            for name, server in order:
                progress(f"round {k + 1}/{settings.rounds} {name} c={CONCURRENCY}")
                url = server.url + CHAT_PATH
                client = settings.load_client
                before = group_cpu_s(server.pid)
                load = run_load(url, body, CONCURRENCY, settings.seconds, client=client)
                used = group_cpu_s(server.pid) - before
                run.rounds[name].append(load)
                if load.requests:
                    run.cpu_ms[name].append(used * 1000 / load.requests)
        for name, server in servers.items():
            text = _metrics(server)
            run.requests[name] = _metric(text, "opsgate_requests_total", 'model="bench"')
            run.drawn[name] = _metric(text, "opsgate_online_samples_total", "queued")
            run.scored[name] = _metric(text, "opsgate_online_scores_total")
    return run


def online_grids(run: OnlineRun) -> list[Grid]:
    grid = Grid(
        f"Online scoring at {RATE:.0%} sampling: gateway throughput at c={CONCURRENCY}",
        ("online scoring", "req/s (median)", "vs off", "gateway CPU ms / request", "vs off",
         "p50 ms", "p99 ms", "errors", "requests", "drawn", "scorer results"),
    )  # fmt: skip
    for name, rounds in run.rounds.items():
        grid.rows.append(
            (
                name,
                f"{run.rps(name):,.0f}",
                f"{run.ratio(name):.3f}",
                f"{run.cpu(name):.3f}",
                f"{run.cpu_ratio(name):.3f}",
                f"{median([r.p50_ms for r in rounds]):.2f}",
                f"{median([r.p99_ms for r in rounds]):.2f}",
                str(sum(r.errors for r in rounds)),
                f"{run.requests[name]:,.0f}",
                f"{run.drawn[name]:,.0f}",
                f"{run.scored[name]:,.0f}",
            )
        )
    for name in list(run.rounds)[1:]:
        ratios = sorted(
            r.rps / o.rps for o, r in zip(run.rounds["off"], run.rounds[name], strict=True) if o.rps
        )
        q1, q3 = percentile(ratios, 25), percentile(ratios, 75)
        cost = run.cpu_ratio(name) - 1
        verdict = "met" if cost < 1 - TARGET else "NOT met"
        cpus = sorted(run.cpu_ms[name])
        grid.notes.append(
            f"{name}: gateway CPU per request {cost:+.1%} against off (rounds "
            f"{cpus[0]:.3f}-{cpus[-1]:.3f} ms; target cost < 3%: {verdict}); req/s median "
            f"per-round ratio {median(ratios):.3f} (interquartile {q1:.3f}-{q3:.3f}, all "
            f"{ratios[0]:.3f}-{ratios[-1]:.3f}: too noisy on this box to judge 3% by)"
        )
    grid.notes.append(
        "requests counts every request the gateway served, the in-process judge calls "
        "included; drawn: answers queued for scoring; scorer results: recorded, failed and "
        "skipped, all scorers"
    )
    loop_us = median(run.score_us)
    per_request_ms = run.cpu("off")
    estimate = RATE * run.score_cpu_us / 1000 / per_request_ms if per_request_ms else 0.0
    met = "met" if estimate < 1 - TARGET else "NOT met"
    timing = Grid(
        "Online scoring per drawn answer, in process (detector + recording the score)",
        ("answers", "event loop p50 µs", "process CPU µs", "estimated cost at 5%", "target"),
        [
            (
                f"{len(run.score_us):,}",
                f"{loop_us:,.0f}",
                f"{run.score_cpu_us:,.0f}",
                f"{estimate:.2%}",
                f"< 3%: {met}",
            )
        ],
        [
            f"estimate = {RATE:g} x {run.score_cpu_us:,.0f} µs / {per_request_ms:.3f} ms (the off "
            "gateway's CPU per request); process CPU includes the draw, the sample and the score "
            "writer's SQLite thread; a judge adds, per judged answer, about one more gateway "
            "request (two when its verdict must be asked again)"
        ],
    )
    return [grid, timing]


def main_online(args: Any, note: str, console: Console, progress: Progress) -> None:
    from bench.docs import update_section

    settings = Settings(
        rounds=max(1, args.rounds),
        seconds=max(1, args.seconds),
        warmup=max(1, args.warmup),
        load_client=args.load_client,
    )
    grids = online_grids(run_online(settings, progress))
    for grid in grids:
        grid.rich(console)
    if not args.no_docs:
        method = (
            f"Method: three `opsgate serve` processes (uvicorn, traces on, exact cache off) in "
            f"front of one fake upstream, loaded one at a time at c={CONCURRENCY} in "
            f"{settings.rounds} rotating rounds of {settings.seconds} s after a "
            f"{settings.warmup} s warm-up each."
        )
        body = "\n".join(
            ["## Online scoring (`python -m bench online`)", "", note, "", method,
             *grids_markdown(grids)]
        )  # fmt: skip
        update_section("online", body)
