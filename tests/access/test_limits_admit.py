"""The Admit stage in a real pipeline (Admit → Settle → an endpoint standing in for the router),
with the in-memory and the Redis backends: headers, 429s, budget holds and settlement, streams
cut at the budget, and release on errors and disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from opsgate.access.budgets.cost import WorstCase
from opsgate.access.budgets.ledger import LedgerBase
from opsgate.access.budgets.memory import MemoryBudgetLedger
from opsgate.access.budgets.model import BudgetExceededError, BudgetScope, StreamBudgetExceededError
from opsgate.access.budgets.redis import RedisBudgetLedger
from opsgate.access.limits.memory import MemoryRateLimiter
from opsgate.access.limits.model import LimitExceededError, RateLimiter, ScopeRef
from opsgate.access.limits.redis import RedisRateLimiter
from opsgate.access.principal import BudgetPolicy, Limits, Principal, Scope
from opsgate.chat import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest
from opsgate.errors import BadGatewayError, ServiceUnavailableError
from opsgate.identity import caller_labels
from opsgate.pipeline.context import (
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
    RequestContext,
)
from opsgate.pipeline.pipeline import Pipeline
from opsgate.pipeline.stages.admit import Admit
from opsgate.pipeline.stages.settle import Settle, SettleEmbedding
from opsgate.providers.transport import HTTPClient
from opsgate.routing.build import build_router
from opsgate.routing.router import Router
from tests.fixtures.gateway import make_config
from tests.fixtures.redisdb import redis_prefix

PRICE = {"input": 1000, "output": 2000}  # micro-dollars per token: 1000 in, 2000 out
MSG = [{"role": "user", "content": "hello there"}]


def router() -> Router:
    dep = {"provider": "openai", "model": "gpt-x", "base_url": "http://127.0.0.1:9"}
    config = make_config(
        {
            "models": [
                {"name": "m", "deployments": [{**dep, "price": PRICE, "max_tokens_cap": 100}]},
                {
                    "name": "dear",
                    "deployments": [{**dep, "id": "d2", "price": {"input": 1, "output": 9000}}],
                },
                {
                    "name": "e",
                    "kind": "embedding",
                    "deployments": [{**dep, "id": "e1", "price": PRICE}],
                },
            ],
            "router": {"fallbacks": {"m": ["dear"]}},
        }
    )
    return build_router(config, HTTPClient())


@dataclass
class Upstream:
    """The endpoint: answers like the router would, from a script."""

    router: Router
    completion: int = 5
    chunks: int = 0
    fail: Exception | None = None
    hang: asyncio.Event | None = None
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    async def __call__(self, call: ChatCall) -> ChatResult:
        self.calls += 1
        call.ctx.route.deployment = self.router.groups["m"].deployments[0]
        if self.hang is not None:
            self.waiting.set()
            await self.hang.wait()
        if self.fail is not None:
            raise self.fail
        if call.request.stream:
            return self._stream()
        await asyncio.sleep(0.001)
        usage = {"prompt_tokens": 10, "completion_tokens": self.completion}
        return ChatResponse({"model": "gpt-x", "choices": [], "usage": usage})

    async def _stream(self) -> AsyncIterator[ChatChunk]:
        for _ in range(self.chunks):
            await asyncio.sleep(0)
            yield ChatChunk({"choices": [{"index": 0, "delta": {"content": "word "}}]})
        yield ChatChunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})


@dataclass
class Stack:
    limiter: RateLimiter
    ledger: LedgerBase
    upstream: Upstream
    admit: Admit

    @property
    def pipeline(self) -> Pipeline[ChatCall, ChatResult]:
        return Pipeline([self.admit, Settle()], self.upstream)

    async def chat(self, principal: Principal, **params: Any) -> tuple[ChatResult, RequestContext]:
        stream = bool(params.pop("stream", False))
        ctx = RequestContext(headers={}, labels=caller_labels({}, params))  # as Record reads them
        ctx.principal = principal
        req = ChatRequest(model="m", messages=MSG, stream=stream, params=params)
        return await self.pipeline(ChatCall(ctx, req)), ctx


@pytest.fixture(params=["memory", "redis"])
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    r = router()
    if request.param == "memory":
        limiter: RateLimiter = MemoryRateLimiter()
        ledger: LedgerBase = MemoryBudgetLedger()
        yield Stack(
            limiter, ledger, Upstream(r), Admit(limiter=limiter, ledger=ledger, pricer=WorstCase(r))
        )
        return
    async with redis_prefix() as (client, prefix):
        rl, bl = RedisRateLimiter(client, prefix=prefix), RedisBudgetLedger(client, prefix=prefix)
        yield Stack(rl, bl, Upstream(r), Admit(limiter=rl, ledger=bl, pricer=WorstCase(r)))
        await rl.aclose()
        await bl.aclose()


def with_budget(usd: str, **limits: int) -> Principal:
    policy = BudgetPolicy(max_usd=Decimal(usd), period="daily")
    return Principal(key_id="k1", team_id="t1", key=Scope(Limits(**limits), policy))


def key_budget(principal: Principal) -> BudgetScope:
    assert principal.key.budget is not None
    return BudgetScope(ScopeRef("key", principal.key_id), principal.key.budget)


async def test_headers_then_429_naming_the_limit(stack: Stack) -> None:
    principal = Principal(key_id="k1", key=Scope(Limits(rpm=2, tpm=10_000)))
    _, ctx = await stack.chat(principal, max_tokens=50)
    assert ctx.response_headers["x-ratelimit-limit-requests"] == "2"
    assert ctx.response_headers["x-ratelimit-remaining-requests"] == "1"
    assert ctx.response_headers["x-ratelimit-limit-tokens"] == "10000"
    assert int(ctx.response_headers["x-ratelimit-remaining-tokens"]) < 10_000 - 50
    await stack.chat(principal)
    with pytest.raises(LimitExceededError) as caught:
        await stack.chat(principal)
    assert caught.value.param == "key.rpm" and "retry-after" in caught.value.headers
    assert stack.upstream.calls == 2


async def test_budget_holds_the_worst_case_and_settles_the_real_cost(stack: Stack) -> None:
    principal = with_budget("1")
    _, ctx = await stack.chat(principal, max_tokens=20)
    status = await stack.ledger.status(key_budget(principal))
    assert ctx.cost_micros == 10 * 1000 + 5 * 2000
    assert (status.spent, status.held) == (20_000, 0)


async def test_fifty_parallel_requests_stay_within_a_small_budget(stack: Stack) -> None:
    principal = with_budget("0.2")  # 200_000; worst case per request: prompt + 20 * 9000
    stack.upstream.completion = 20  # the full max_tokens, at the cheaper deployment
    results = await asyncio.gather(
        *(stack.chat(principal, max_tokens=20) for _ in range(50)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    served = [r for r in results if not isinstance(r, BaseException)]
    assert len(served) + len(refused) == 50 and refused and served
    status = await stack.ledger.status(key_budget(principal))
    assert status.held == 0
    assert status.spent == 50_000 * len(served) <= 200_000


async def test_a_refusal_by_one_part_undoes_the_other(stack: Stack) -> None:
    principal = with_budget("0.05", rpm=2)  # 50_000
    _, ctx = await stack.chat(principal, max_tokens=1)  # each answer costs 20_000
    assert ctx.response_headers["x-ratelimit-remaining-requests"] == "1"
    with pytest.raises(BudgetExceededError):  # worst case 4 * 9000 > 30_000 left; rpm undone
        await stack.chat(principal, max_tokens=4)
    _, ctx = await stack.chat(principal, max_tokens=1)
    assert ctx.response_headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(LimitExceededError):  # the limit refuses: the budget hold is undone
        await stack.chat(principal, max_tokens=1)
    status = await stack.ledger.status(key_budget(principal))
    assert (status.spent, status.held) == (40_000, 0)


async def test_a_stream_is_cut_where_the_budget_ends(stack: Stack) -> None:
    principal = with_budget("0.03", max_parallel=1)  # 30_000: prompt ~10k, then ~10 tokens
    stack.upstream.chunks = 200
    result, ctx = await stack.chat(principal, stream=True)
    assert isinstance(result, AsyncIterator)
    delivered: list[ChatChunk] = []
    with pytest.raises(StreamBudgetExceededError) as caught:
        async for chunk in result:
            delivered.append(chunk)
    assert caught.value.code == "budget_exceeded" and caught.value.param == "key.budget"
    assert "cut off" in caught.value.message
    assert 3 < len(delivered) < 20
    status = await stack.ledger.status(key_budget(principal))
    assert status.held == 0 and ctx.usage_estimated
    assert 25_000 < status.spent <= 30_000 + 2 * 2000  # at most one chunk past the budget
    with pytest.raises(BudgetExceededError):  # the budget is spent; the slot is free again
        await stack.chat(principal, stream=True)


async def test_a_stream_within_budget_runs_to_the_end(stack: Stack) -> None:
    principal = with_budget("1", max_parallel=1)
    stack.upstream.chunks = 150  # past the 100-token cap the hold was sized for: extended
    result, _ = await stack.chat(principal, stream=True)
    assert isinstance(result, AsyncIterator)
    assert len([c async for c in result]) == 151
    status = await stack.ledger.status(key_budget(principal))
    assert status.held == 0 and status.spent > 100 * 2000


async def test_errors_and_disconnects_release_everything(stack: Stack) -> None:
    principal = with_budget("1", max_parallel=1)
    stack.upstream.fail = BadGatewayError("upstream broke")
    with pytest.raises(BadGatewayError):
        await stack.chat(principal, max_tokens=5)
    stack.upstream.fail = None
    stack.upstream.chunks = 5
    result, _ = await stack.chat(principal, stream=True)  # the slot is free again
    assert isinstance(result, AsyncIterator)
    await anext(result)
    await result.aclose()  # type: ignore[attr-defined]  # the client went away mid-stream
    streamed = (await stack.ledger.status(key_budget(principal))).spent
    assert streamed > 0  # the prompt and the first word were paid for
    stack.upstream.hang = asyncio.Event()
    task = asyncio.create_task(stack.chat(principal, max_tokens=5))
    await stack.upstream.waiting.wait()
    task.cancel()  # the client went away before the answer
    with pytest.raises(asyncio.CancelledError):
        await task
    await stack.admit.aclose()
    stack.upstream.hang = None
    await stack.chat(principal, max_tokens=5)
    status = await stack.ledger.status(key_budget(principal))
    assert status.held == 0 and status.spent == streamed + 20_000


async def test_end_users_are_limited_per_user(stack: Stack) -> None:
    principal = Principal(key_id="k1", end_user=Scope(Limits(rpm=1)))
    await stack.chat(principal, user="alice")
    await stack.chat(principal, user="bob")
    await stack.chat(principal)  # no end user: their limit does not apply
    with pytest.raises(LimitExceededError) as caught:
        await stack.chat(principal, user="alice")
    assert caught.value.param == "user.rpm"


async def test_callers_without_limits_pass_straight_through(stack: Stack) -> None:
    _, ctx = await stack.chat(Principal(key_id="free"))
    assert ctx.response_headers == {}
    ctx = RequestContext(headers={})  # not authenticated (a stage before decides)
    call = ChatCall(ctx, ChatRequest(model="m", messages=MSG))
    assert isinstance(await stack.pipeline(call), ChatResponse)


@pytest.mark.parametrize("fail_open", [True, False])
async def test_an_unreachable_redis_fails_open_or_closed(fail_open: bool) -> None:
    r = router()
    client = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    admit = Admit(
        limiter=RedisRateLimiter(client),
        ledger=RedisBudgetLedger(client),
        pricer=WorstCase(r),
        fail_open=fail_open,
    )
    stack = Stack(MemoryRateLimiter(), MemoryBudgetLedger(), Upstream(r), admit)
    try:
        # $100: the worst case ($36.86, 4,096 tokens at `dear`'s price) fits, so Redis is asked
        if fail_open:
            _, ctx = await stack.chat(with_budget("100", rpm=5))
            assert ctx.cost_micros > 0
        else:
            with pytest.raises(ServiceUnavailableError):
                await stack.chat(with_budget("100", rpm=5))
    finally:
        await client.aclose()


def test_worst_case_cost() -> None:
    pricer = WorstCase(router())
    req = ChatRequest(model="m", messages=MSG, params={"max_tokens": 10})
    bound = pricer.chat(req)
    # The fallback `dear` charges 9000 per output token: the worst case is priced there.
    assert bound.output_tokens == 10 and bound.micros == bound.prompt_tokens * 1 + 10 * 9000
    assert bound.prompt_micros == bound.prompt_tokens * 1000
    uncapped = pricer.chat(ChatRequest(model="m", messages=MSG, params={"n": 2}))
    assert uncapped.output_tokens == 2 * 4096  # `dear` has no cap: the default bounds it
    capped = WorstCase(router()).chat(ChatRequest(model="dear", messages=MSG, params={}))
    assert capped.output_tokens == 4096
    emb = pricer.embedding(EmbeddingRequest(model="e", input=["abcd efgh"]))
    assert emb.output_tokens == 0 and emb.micros == emb.prompt_tokens * 1000
    unknown = pricer.chat(ChatRequest(model="nope", messages=MSG))
    assert unknown.micros == 0


async def test_embeddings_are_admitted_and_settled(stack: Stack) -> None:
    principal = with_budget("1", rpm=5, tpm=1000)
    dep = stack.upstream.router.groups["e"].deployments[0]

    async def embed(call: EmbeddingCall) -> EmbeddingResult:
        call.ctx.route.deployment = dep
        return {"object": "list", "data": [], "usage": {"prompt_tokens": 7}}

    pipeline: Pipeline[EmbeddingCall, EmbeddingResult] = Pipeline(
        [stack.admit, SettleEmbedding()], embed
    )
    ctx = RequestContext(headers={})
    ctx.principal = principal
    await pipeline(EmbeddingCall(ctx, EmbeddingRequest(model="e", input=["abcd efgh"])))
    assert ctx.response_headers["x-ratelimit-remaining-requests"] == "4"
    status = await stack.ledger.status(key_budget(principal))
    assert (status.spent, status.held) == (7_000, 0)
