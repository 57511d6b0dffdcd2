"""`python -m bench access`: what auth + rate limits + budgets add to each request.

An in-process micro-benchmark of the hot path's access stages, with nothing else in the way:
each variant is a real `Pipeline` (the stages under test, then Settle, then an endpoint that
answers at once, standing in for the router) called sequentially; the added cost is a
variant's median minus the bare pipeline's median, measured in interleaved rounds. Limits
apply to three scopes (key, team, end user: rpm, tpm and max_parallel each) and budgets to the
same three; nothing is ever refused. Auth is a virtual key resolved by `AccessService` (warm
cache, as on every request after a key's first), when that module is present.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.report import Grid
from opsgate.access.budgets.cost import WorstCase
from opsgate.access.budgets.memory import MemoryBudgetLedger
from opsgate.access.budgets.redis import RedisBudgetLedger
from opsgate.access.limits.memory import MemoryRateLimiter
from opsgate.access.limits.redis import RedisRateLimiter
from opsgate.access.principal import BudgetPolicy, Limits, Principal, Scope
from opsgate.chat import ChatRequest, ChatResponse
from opsgate.config import parse_config
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.pipeline import Next, Pipeline
from opsgate.pipeline.stages.admit import Admit
from opsgate.pipeline.stages.settle import Settle
from opsgate.providers.transport import HTTPClient
from opsgate.routing.build import build_router
from opsgate.routing.router import Router

REDIS_URL = "redis://127.0.0.1:6379/0"
TARGETS_MS = {"memory": 0.3, "redis": 1.0}
BIG = Limits(rpm=10**9, tpm=10**12, max_parallel=10_000)
BUDGET = BudgetPolicy(max_usd=Decimal(10**6), period="monthly")
MESSAGES = [{"role": "user", "content": "Summarise the attached report in three bullet points."}]
Progress = Callable[[str], None]
Closer = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Variant:
    name: str
    backend: str
    """`bare`, `memory` or `redis`."""
    auth: bool
    pipeline: Pipeline[ChatCall, ChatResult]
    headers: dict[str, str] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)


@dataclass(slots=True)
class AccessRun:
    variants: list[Variant]
    rounds: int
    seconds: float
    notes: list[str]


def principal() -> Principal:
    scope = Scope(BIG, BUDGET)
    return Principal(
        key_id="key_bench", team_id="team_bench", key=scope, team=scope, end_user=scope
    )


def router() -> Router:
    dep = {"provider": "openai", "model": "gpt-4o-mini", "base_url": "http://127.0.0.1:9"}
    config = parse_config({"models": [{"name": "m", "deployments": [dep]}]}, source="<bench>")
    return build_router(config, HTTPClient())


class Answer:
    """The endpoint: the router's part done, an answer with usage, no I/O."""

    def __init__(self, r: Router) -> None:
        self.deployment = r.groups["m"].deployments[0]
        self.body = {
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 40},
        }

    async def __call__(self, call: ChatCall) -> ChatResult:
        call.ctx.route.deployment = self.deployment
        return ChatResponse(self.body)


class AsCaller:
    """Sets the principal the way Authenticate would (variants without auth)."""

    def __init__(self, who: Principal) -> None:
        self.who = who

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        call.ctx.principal = self.who
        return await call_next(call)


async def virtual_key_auth(tmp: Path) -> tuple[Any, str, Closer] | None:
    """An `Authenticate` stage and a virtual key with limits and budgets on key, team and end
    user, from the access package; None when that package is not there (yet)."""
    try:
        from opsgate.access.control import AccessService
        from opsgate.access.manage import AccessAdmin
        from opsgate.access.models import BudgetIn, KeyCreate, LimitsIn, TeamCreate
        from opsgate.access.principal import MASTER
        from opsgate.pipeline.stages.authenticate import Authenticate
        from opsgate.store.db import dispose_engine, make_engine
        from opsgate.store.migrate import upgrade
    except ImportError:
        return None
    url = f"sqlite:///{tmp / 'bench-access.db'}"
    await upgrade(url)
    engine = make_engine(url)
    control = AccessService(engine)
    await control.start()
    admin = AccessAdmin(control)
    limits = LimitsIn(rpm=BIG.rpm, tpm=BIG.tpm, max_parallel=BIG.max_parallel)
    budget = BudgetIn(max_usd=BUDGET.max_usd, period=BUDGET.period)
    team = await admin.create_team(MASTER, TeamCreate(name="bench", limits=limits, budget=budget))
    body = KeyCreate(
        team_id=team.id,
        limits=limits,
        budget=budget,
        end_user_limits=limits,
        end_user_budget=budget,
    )
    _, secret = await admin.create_key(MASTER, body)

    async def close() -> None:
        await control.aclose()
        await dispose_engine(engine)

    return Authenticate(None, control), secret, close


async def build(
    tmp: Path, redis: Redis | None, notes: list[str]
) -> tuple[list[Variant], list[Closer]]:
    r, who = router(), principal()
    answer, pricer = Answer(r), WorstCase(r)
    closers: list[Closer] = []
    backends: dict[str, Admit] = {
        "memory": Admit(limiter=MemoryRateLimiter(), ledger=MemoryBudgetLedger(), pricer=pricer)
    }
    if redis is not None:
        prefix = f"opsgate-bench:{time.time_ns()}:"
        limiter, ledger = (
            RedisRateLimiter(redis, prefix=prefix),
            RedisBudgetLedger(redis, prefix=prefix),
        )
        backends["redis"] = Admit(limiter=limiter, ledger=ledger, pricer=pricer)
        closers += [limiter.aclose, ledger.aclose]
    variants = [
        Variant(
            "bare pipeline (Settle only)",
            "bare",
            False,
            Pipeline([AsCaller(who), Settle()], answer),
        )
    ]
    for name, admit in backends.items():
        pipe: Pipeline[ChatCall, ChatResult] = Pipeline([AsCaller(who), admit, Settle()], answer)
        variants.append(Variant(f"admit, {name}", name, False, pipe))
    auth = await virtual_key_auth(tmp)
    if auth is None:
        notes.append("virtual-key auth not measured: opsgate.access.control is not available")
        return variants, closers
    stage, secret, close = auth
    closers.append(close)
    headers = {"authorization": f"Bearer {secret}", "x-opsgate-end-user": "alice"}
    variants.append(
        Variant("auth only", "bare", True, Pipeline([stage, Settle()], answer), headers)
    )
    for name, admit in backends.items():
        both: Pipeline[ChatCall, ChatResult] = Pipeline([stage, admit, Settle()], answer)
        variants.append(Variant(f"auth + admit, {name}", name, True, both, headers))
    return variants, closers


async def _call(variant: Variant) -> None:
    headers = variant.headers or {"x-opsgate-end-user": "alice"}
    req = ChatRequest(model="m", messages=MESSAGES, params={"max_tokens": 64})
    await variant.pipeline(ChatCall(RequestContext(headers=headers), req))


async def _round(variant: Variant, seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    clock = time.perf_counter
    samples: list[float] = []
    while clock() < deadline:
        t0 = clock()
        await _call(variant)
        samples.append(clock() - t0)
    variant.samples += samples
    variant.round_medians.append(statistics.median(samples))


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


async def run(rounds: int, seconds: float, progress: Progress) -> AccessRun:
    notes: list[str] = [f"load average before: {_load()}"]
    redis: Redis | None = Redis.from_url(REDIS_URL)
    assert redis is not None
    try:
        await redis.ping()
    except Exception as exc:
        notes.append(f"Redis rows skipped: {REDIS_URL} unreachable ({exc})")
        await redis.aclose()
        redis = None
    with tempfile.TemporaryDirectory() as tmp:
        variants, closers = await build(Path(tmp), redis, notes)
        try:
            for variant in variants:  # warm-up: caches, scripts loaded, connections open
                for _ in range(200):
                    await _call(variant)
            for i in range(rounds):
                progress(f"access round {i + 1}/{rounds}")
                for variant in variants:
                    await _round(variant, seconds)
        finally:
            for close in closers:
                await close()
            if redis is not None:
                keys = [k async for k in redis.scan_iter(match="opsgate-bench:*", count=1000)]
                if keys:
                    await redis.delete(*keys)
                await redis.aclose()
    notes.append(f"load average after: {_load()}")
    return AccessRun(variants, rounds, seconds, notes)


def run_access(rounds: int, seconds: float, progress: Progress) -> AccessRun:
    return asyncio.run(run(rounds, seconds, progress))


def _median_us(v: Variant) -> float:
    return statistics.median(v.samples) * 1e6


def _p99_us(v: Variant) -> float:
    return statistics.quantiles(v.samples, n=100)[98] * 1e6


def _best_us(v: Variant) -> float:
    return min(v.round_medians) * 1e6


def access_grids(run: AccessRun) -> list[Grid]:
    bare = next(v for v in run.variants if v.backend == "bare" and not v.auth)
    grid = Grid(
        "Access control on the hot path (in-process, sequential calls)",
        (
            "variant",
            "calls",
            "median µs",
            "best round µs",
            "p99 µs",
            "added ms (median)",
            "added ms (best round)",
            "target ms",
            "met",
        ),
        notes=run.notes,
    )
    for v in run.variants:
        added = (_median_us(v) - _median_us(bare)) / 1000
        best = (_best_us(v) - _best_us(bare)) / 1000
        target = TARGETS_MS.get(v.backend) if v is not bare else None
        judged = target is not None
        met = ""
        if target is not None:
            met = "yes" if added < target else "best round only" if best < target else "NO"
        grid.rows.append(
            (
                v.name,
                f"{len(v.samples):,}",
                f"{_median_us(v):.1f}",
                f"{_best_us(v):.1f}",
                f"{_p99_us(v):.1f}",
                "—" if v is bare else f"{added:.3f}",
                "—" if v is bare else f"{best:.3f}",
                f"< {target}" if judged else "—",
                met,
            )
        )
    return [grid]


def access_markdown(run: AccessRun, note: str) -> str:
    [grid] = access_grids(run)
    method = (
        f"Method: {run.rounds} interleaved rounds of {run.seconds:g} s per variant after a "
        "200-call warm-up; one request at a time in one event loop. `median` is over all "
        "calls; `best round` is the lowest of the per-round medians (timeit's reasoning: "
        "other load on the machine only ever adds time), the closer estimate of the intrinsic "
        "cost when the machine is shared. "
        "Each variant is a real pipeline: the stages named, then Settle, then an endpoint "
        "that answers at once. `admit` = rate limits for three scopes (key, team, end user; "
        "rpm, tpm and max_parallel each, never refusing) + budget hold and settle for the same "
        "three scopes. On Redis (127.0.0.1:6379, same machine, sharing its CPUs) that is two "
        "pipelined round trips (acquire + reserve in, release + settle out) running four Lua "
        "scripts. `auth` = a virtual key resolved from `AccessService`'s warm cache."
    )
    parts = [
        "## Access control: auth + rate limits + budgets (`python -m bench access`)",
        note,
        method,
        grid.markdown(),
        "\n".join(f"- {n}" for n in run.notes),
    ]
    return "\n\n".join(parts)
