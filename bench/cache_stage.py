"""What the cache stage itself costs, in process (no HTTP): the time to answer an exact hit, a
semantic hit, and what a miss adds (lookup and store) over calling the next stage directly.
The next stage returns a ready answer at once, so only the cache's own work is timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.stats import percentile
from opsgate.access.principal import Principal
from opsgate.cache import CacheConfig, CacheService, MemoryStore
from opsgate.cache.embed.hashing import HashingEmbedder
from opsgate.cache.semantic.store import SemanticStore
from opsgate.cache.store import ExactStore
from opsgate.chat import ChatRequest, ChatResponse
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.stages.cache import Cache

SYSTEM = (
    "You are a helpful support assistant for ACME Cloud. Answer briefly and cite the docs. " * 3
)
ANSWER = {
    "id": "chatcmpl-x",
    "object": "chat.completion",
    "created": 0,
    "model": "sim",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Open Settings > Security. " * 20},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 120, "completion_tokens": 100, "total_tokens": 220},
}
PRINCIPAL = Principal(key_id="k1", team_id="t1")


@dataclass(frozen=True, slots=True)
class StageRow:
    case: str
    p50_us: float
    p99_us: float


def _call(question: str, headers: dict[str, str] | None = None) -> ChatCall:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    ctx = RequestContext(headers=headers or {})
    ctx.principal = PRINCIPAL
    return ChatCall(ctx, ChatRequest("m", messages, params={"temperature": 0}))


async def _answer(call: ChatCall) -> ChatResult:
    return ChatResponse(dict(ANSWER))


async def _timed(make: Callable[[int], Awaitable[object]], n: int) -> list[float]:
    for i in range(min(200, n)):
        await make(i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await make(i)
        out.append((time.perf_counter() - t0) * 1e6)
    return sorted(out)


def _row(case: str, samples: list[float]) -> StageRow:
    return StageRow(case, percentile(samples, 50), percentile(samples, 99))


async def run_stage(
    n: int = 3000, exact: ExactStore | None = None, label: str = "memory"
) -> list[StageRow]:
    config = CacheConfig.model_validate(
        {"semantic": {"enabled": True, "embedder": {"type": "hashing"}, "threshold": 0.8}}
    )
    semantic = SemanticStore(HashingEmbedder(), threshold=0.8)
    service = CacheService(exact or MemoryStore(max_entries=10 * n + 1000), semantic)
    stage = Cache(service, config)
    await stage(_call("How do I rotate my API key?"), _answer)
    rows = []
    direct = await _timed(lambda i: _answer(_call(f"q{i}")), n)
    rows.append(_row("no cache stage (baseline)", direct))
    rows.append(
        _row(
            f"exact hit ({label})",
            await _timed(lambda i: stage(_call("How do I rotate my API key?"), _answer), n),
        )
    )
    rows.append(
        _row(
            f"miss + store ({label}, exact + semantic)",
            await _timed(lambda i: stage(_call(f"Question number {i} about keys?"), _answer), n),
        )
    )
    rows.append(
        _row(
            "semantic hit (hashing embedder, incl. embedding)",
            await _timed(lambda i: stage(_call("how do i rotate my api key"), _answer), n),
        )
    )
    bypass = {"x-opsgate-cache": "no-cache, no-store"}
    rows.append(
        _row(
            "bypass (directive)", await _timed(lambda i: stage(_call(f"b{i}", bypass), _answer), n)
        )
    )
    await service.aclose()
    return rows


def stage_rows(n: int = 3000, redis_url: str | None = None) -> list[StageRow]:
    rows = asyncio.run(run_stage(n))
    if redis_url:
        rows += asyncio.run(_redis_rows(n, redis_url))
    return rows


async def _redis_rows(n: int, url: str) -> list[StageRow]:
    import uuid

    from opsgate.cache.redis_store import RedisStore

    prefix = f"opsgate-bench:{uuid.uuid4().hex[:8]}:"
    store = RedisStore.from_url(url, prefix)
    try:
        rows = await run_stage(min(n, 1000), store, "redis")
    finally:
        cleanup = RedisStore.from_url(url, prefix)
        keys = [k async for k in cleanup.client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await cleanup.client.delete(*keys)
        await cleanup.aclose()
    return [r for r in rows if "redis" in r.case]
