"""`python -m bench prompts`: what serving a prompt from the registry costs.

Three measurements, against the issue's targets:

1. Resolution from the in-memory cache (`PromptService.resolve` with a warm cache): medians of
   per-call times, in-process, one call at a time (< 0.1 ms). Beside it, what the two prompt
   stages add to a request (read the reference, resolve, bind, render, join; with the input
   guard off, and scanning so that variables are marked untrusted and joined again): a real
   `Pipeline` of the two stages minus an empty one, the endpoint answering at once.
2. Rendering a 4k-token template (a support prompt of ~4,000 tokens with variables, a
   condition and a loop): `bind` + `render_messages` (< 0.5 ms).
3. Throughput at c=32 of `model: "prompt:..."` requests against plain requests that send the
   same rendered messages, through the real gateway (`opsgate serve`) and the fake upstream,
   in interleaved rounds (within 5%).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import LoadResult, run_load
from bench.measure import Settings
from bench.report import Grid
from bench.servers import CHAT_PATH, MODEL, fake_upstream, gateway, request_body
from bench.stats import median, percentile
from opsgate.access.principal import ANONYMOUS, MASTER
from opsgate.accounting import count_text_tokens
from opsgate.audit import AuditLog
from opsgate.chat import ChatRequest, ChatResponse
from opsgate.config.guard import GuardConfig, GuardPolicy
from opsgate.guard.service import GuardService
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.pipeline import Pipeline
from opsgate.pipeline.stages.prompt import JoinPrompt, RenderPrompt
from opsgate.prompts.cache import Resolved
from opsgate.prompts.model import NO_TEAM, PromptRef, PromptVersion
from opsgate.prompts.request import render_messages
from opsgate.prompts.service import PromptService
from opsgate.prompts.spec import PromptSpec
from opsgate.prompts.variables import bind
from opsgate.store import dispose_engine, make_engine
from opsgate.store.migrate import upgrade

Progress = Callable[[str], None]
RESOLVE_TARGET_MS = 0.1
RENDER_TARGET_MS = 0.5
THROUGHPUT_TARGET = 0.95
CONCURRENCY = 32
CALLS = 20_000
RENDERS = 5_000

PLAIN = orjson.loads(request_body())
BENCH_PROMPT: dict[str, Any] = {
    "name": "bench-prompt",
    "model": MODEL,
    "params": {"max_tokens": 32, "temperature": 0.2},
    "variables": {"what": {"type": "string"}},
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say {{ what }} in one short sentence."},
    ],
}
PROMPT_BODY = orjson.dumps({"model": "prompt:bench-prompt", "variables": {"what": "hello"}})


@dataclass(frozen=True, slots=True)
class Timing:
    name: str
    samples_us: list[float]
    target_ms: float | None = None

    @property
    def p50(self) -> float:
        return median(self.samples_us)

    @property
    def p99(self) -> float:
        return percentile(sorted(self.samples_us), 99)


@dataclass(frozen=True, slots=True)
class PromptsRun:
    timings: list[Timing]
    template_tokens: int
    plain: list[LoadResult]
    prompted: list[LoadResult]
    settings: Settings

    @property
    def ratio(self) -> float:
        plain = median([r.rps for r in self.plain])
        return median([r.rps for r in self.prompted]) / plain if plain else 0.0


def big_template() -> tuple[PromptSpec, dict[str, Any]]:
    """A ~4k-token support prompt: policy text, a condition, a loop over past tickets."""
    policy = " ".join(
        f"Rule {i}: when a customer reports a problem with {topic}, check the account, "
        f"confirm the plan, and answer politely with the next step for {topic}."
        for i, topic in enumerate(["billing", "login", "printers", "refunds", "exports"] * 25)
    )
    system = (
        "You are the support triage assistant for {{ company }}.\n"
        + policy
        + "\n{% if tier == 'pro' %}The customer is on the pro plan: answer within the hour."
        "{% else %}The customer is on the free plan.{% endif %}\n"
        "Recent tickets:\n{% for t in history %}- {{ loop.index }}. {{ t.subject }}: "
        "{{ t.status }}\n{% endfor %}Answer with one queue name."
    )
    spec = PromptSpec.model_validate(
        {
            "model": "m",
            "variables": {
                "company": {"type": "string"},
                "tier": {"type": "string", "default": "free"},
                "history": {"type": "array", "default": []},
                "ticket": {"type": "string"},
            },
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": "Ticket: {{ ticket }}"},
            ],
        }
    )
    history = [{"subject": f"ticket {i}", "status": "closed"} for i in range(10)]
    values = {"company": "Acme", "tier": "pro", "history": history, "ticket": "It is broken."}
    return spec, values


def _timed(fn: Callable[[], object], calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


async def _micro(folder: Path) -> tuple[list[Timing], int]:
    url = f"sqlite:///{folder / 'bench.db'}"
    await upgrade(url)
    engine = make_engine(url)
    try:
        service = PromptService(engine, audit=AuditLog(engine))
        spec = PromptSpec.model_validate({k: v for k, v in BENCH_PROMPT.items() if k != "name"})
        await service.push(
            MASTER,
            NO_TEAM,
            "bench-prompt",
            spec,
            message=None,
            actor="bench",
            labels=("production",),
        )
        ref = PromptRef("bench-prompt")
        await service.resolve(NO_TEAM, ref)  # warm
        resolve = []
        for _ in range(CALLS):
            t0 = time.perf_counter_ns()
            await service.resolve(NO_TEAM, ref)
            resolve.append((time.perf_counter_ns() - t0) / 1000)
        request = ChatRequest(
            model="prompt:bench-prompt", messages=[], params={"variables": {"what": "hello"}}
        )
        stages = {}
        for scan, policy in (("off", GuardPolicy()), ("on", GuardPolicy(injection="flag"))):
            guard = GuardService(GuardConfig(default=policy))
            stages[scan] = await _stage_times(
                Pipeline([RenderPrompt(service, guard), JoinPrompt()], _answer), request
            )
        bare = await _stage_times(Pipeline([], _answer), request)
    finally:
        await dispose_engine(engine)
    big, values = big_template()
    resolved_big = _resolved(big)
    text = "".join(m.content for m in big.messages)
    tokens = count_text_tokens(text)
    render = _timed(lambda: render_messages(resolved_big, bind(big.variables, values)), RENDERS)
    base = median(bare)
    return [
        Timing("resolve (warm cache)", resolve, RESOLVE_TARGET_MS),
        Timing("RenderPrompt + JoinPrompt, guard off", [t - base for t in stages["off"]]),
        Timing("RenderPrompt + JoinPrompt, guard scanning", [t - base for t in stages["on"]]),
        Timing(f"render a {tokens:,}-token template", render, RENDER_TARGET_MS),
    ], tokens


async def _answer(call: ChatCall) -> ChatResult:
    return ChatResponse({"object": "chat.completion", "choices": []})


async def _stage_times(
    pipeline: Pipeline[ChatCall, ChatResult], request: ChatRequest
) -> list[float]:
    """Per-call µs of the pipeline on a fresh context each time (the endpoint answers at once)."""
    out = []
    for _ in range(CALLS):
        ctx = RequestContext(headers={})
        ctx.principal = ANONYMOUS
        t0 = time.perf_counter_ns()
        await pipeline(ChatCall(ctx, request))
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def _resolved(spec: PromptSpec) -> Resolved:
    version = PromptVersion("p", NO_TEAM, "big", 1, spec, spec.content_hash(), None, None, 0.0)
    return Resolved.of(version)


def _push(url: str) -> None:
    """Push the benchmark prompt through the admin API (loopback, no master key: admin)."""
    body = orjson.dumps({**BENCH_PROMPT, "labels": ["production"]})
    req = urllib.request.Request(
        url + "/admin/v1/prompts", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def _throughput(
    settings: Settings, progress: Progress
) -> tuple[list[LoadResult], list[LoadResult]]:
    """Plain and prompt requests at c=32, interleaved rounds (one gateway, one upstream)."""
    plain_body = orjson.dumps({**PLAIN})
    with contextlib.ExitStack() as running:
        upstream = running.enter_context(fake_upstream())
        gw = running.enter_context(gateway(upstream))
        _push(gw.url)
        url = gw.url + CHAT_PATH
        targets = {"plain": plain_body, "prompt": PROMPT_BODY}
        for name, body in targets.items():
            progress(f"warm-up {name} c={CONCURRENCY}")
            run_load(url, body, CONCURRENCY, settings.warmup, client=settings.load_client)
        results: dict[str, list[LoadResult]] = {name: [] for name in targets}
        for k in range(settings.rounds):
            order = list(targets.items()) if k % 2 == 0 else list(reversed(targets.items()))
            for name, body in order:
                progress(f"round {k + 1}/{settings.rounds} {name} c={CONCURRENCY}")
                results[name].append(
                    run_load(url, body, CONCURRENCY, settings.seconds, client=settings.load_client)
                )
    return results["plain"], results["prompt"]


def run_prompts(settings: Settings, progress: Progress) -> PromptsRun:
    progress("in-process: resolution and rendering")
    with tempfile.TemporaryDirectory(prefix="bench-prompts-") as tmp:
        timings, tokens = asyncio.run(_micro(Path(tmp)))
    plain, prompted = _throughput(settings, progress)
    return PromptsRun(timings, tokens, plain, prompted, settings)


def prompts_grids(run: PromptsRun) -> list[Grid]:
    micro = Grid(
        "Prompt resolution and rendering (in-process, one call at a time)",
        ("step", "calls", "p50 µs", "p99 µs", "target", "met"),
    )
    for t in run.timings:
        met = "" if t.target_ms is None else ("yes" if t.p50 / 1000 < t.target_ms else "NO")
        target = f"< {t.target_ms} ms" if t.target_ms is not None else "—"
        micro.rows.append(
            (t.name, f"{len(t.samples_us):,}", f"{t.p50:.1f}", f"{t.p99:.1f}", target, met)
        )
    load = Grid(
        f"Throughput at c={CONCURRENCY}: `model: prompt:...` against plain requests",
        ("requests", "req/s (median)", "p50 ms", "p99 ms", "errors", "vs plain"),
    )
    plain_rps = median([r.rps for r in run.plain])
    for name, rounds in (("plain", run.plain), ("prompt:bench-prompt", run.prompted)):
        rps = median([r.rps for r in rounds])
        load.rows.append(
            (
                name,
                f"{rps:,.0f}",
                f"{median([r.p50_ms for r in rounds]):.2f}",
                f"{median([r.p99_ms for r in rounds]):.2f}",
                str(sum(r.errors for r in rounds)),
                f"{rps / plain_rps:.3f}" if plain_rps else "—",
            )
        )
    met = "yes" if run.ratio >= THROUGHPUT_TARGET else "NO"
    load.notes.append(
        f"target: prompt req/s >= {THROUGHPUT_TARGET:.2f} x plain; measured {run.ratio:.3f} "
        f"(met: {met}); per-round ratios: "
        + ", ".join(
            f"{p.rps and q.rps / p.rps:.3f}" for p, q in zip(run.plain, run.prompted, strict=True)
        )
    )
    return [micro, load]


def prompts_markdown(run: PromptsRun, note: str) -> str:
    micro, load = prompts_grids(run)
    method = (
        f"Method: in-process timings are per call ({CALLS:,} resolutions and stage runs, "
        f"{RENDERS:,} renders of a {run.template_tokens:,}-token template with a condition, a "
        "ten-item loop and four variables) after a warm-up, one at a time in one event loop. "
        f"Throughput: one `opsgate serve` (uvicorn, traces on) in front of the fake upstream; "
        f"{run.settings.rounds} interleaved rounds of {run.settings.seconds:g} s per kind at "
        f"c={CONCURRENCY} after a {run.settings.warmup:g} s warm-up each; the prompt requests "
        "render to exactly the plain requests' messages and parameters."
    )
    return "\n\n".join(
        [
            "## Prompt registry (`python -m bench prompts`)",
            note,
            method,
            micro.markdown(),
            load.markdown(),
            "\n".join(f"- {n}" for n in load.notes),
        ]
    )
