"""Rate limits: one suite, run against the in-memory and the Redis limiter alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from opsgate.access.limits.memory import MemoryRateLimiter
from opsgate.access.limits.model import (
    LimitExceededError,
    LimitScope,
    RateLimiter,
    ScopeRef,
    duration,
    limit_scopes,
    until_reset,
    wait_for,
    weighted,
)
from opsgate.access.limits.redis import RedisRateLimiter
from opsgate.access.principal import Limits, Principal, Scope
from tests.fixtures.redisdb import redis_prefix

T0 = 1_700_000_040.0
"""The start of a one-minute window (a multiple of 60)."""


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    name: str
    clock: Clock
    make: Callable[[], RateLimiter]
    """A limiter on this backend: for Redis a new one each call (another replica)."""
    made: list[RateLimiter] = field(default_factory=list)

    def limiter(self) -> RateLimiter:
        limiter = self.make()
        self.made.append(limiter)
        return limiter


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    clock = Clock()
    if request.param == "memory":
        shared = MemoryRateLimiter(clock=clock)
        yield Backend("memory", clock, lambda: shared)
        return
    async with redis_prefix() as (client, prefix):
        made = Backend("redis", clock, lambda: RedisRateLimiter(client, prefix=prefix, clock=clock))
        yield made
        for limiter in made.made:
            assert isinstance(limiter, RedisRateLimiter)
            await limiter.aclose()


def key(**limits: int) -> LimitScope:
    return LimitScope(ScopeRef("key", "k1"), Limits(**limits))


def team(**limits: int) -> LimitScope:
    return LimitScope(ScopeRef("team", "t1"), Limits(**limits))


async def test_rpm_admits_up_to_the_limit_then_429_naming_it(backend: Backend) -> None:
    limiter = backend.limiter()
    remaining = []
    for _ in range(5):
        permit = await limiter.acquire([key(rpm=5)])
        remaining.append(permit.status.remaining_requests)
    assert remaining == [4, 3, 2, 1, 0]
    with pytest.raises(LimitExceededError) as caught:
        await limiter.acquire([key(rpm=5)])
    err = caught.value
    assert err.status == 429 and err.code == "rate_limit_exceeded" and err.param == "key.rpm"
    assert "key k1" in err.message and "requests per minute" in err.message
    # This minute ends in 60 s; then its 5 weigh less and less: one fits 12 s later.
    assert err.retry_after == pytest.approx(72.0)
    assert err.headers["retry-after"] == "72"


async def test_all_or_nothing_across_scopes(backend: Backend) -> None:
    limiter = backend.limiter()
    scopes = [key(rpm=10), team(rpm=2)]
    for _ in range(2):
        await limiter.acquire(scopes)
    with pytest.raises(LimitExceededError) as caught:
        await limiter.acquire(scopes)
    assert caught.value.param == "team.rpm"
    # The refused request charged nothing: the key alone still has 8 left.
    permit = await limiter.acquire([key(rpm=10)])
    assert permit.status.remaining_requests == 7


async def test_sliding_window_weights_the_previous_minute(backend: Backend) -> None:
    limiter = backend.limiter()
    for _ in range(10):
        await limiter.acquire([key(rpm=10)])
    backend.clock.now = T0 + 60 + 30  # half of the last minute is still in the window
    for _ in range(5):
        await limiter.acquire([key(rpm=10)])
    with pytest.raises(LimitExceededError) as caught:
        await limiter.acquire([key(rpm=10)])
    # 10 * 0.5 + 5 = 10 used; one more fits once the old minute's weight drops by 1 (6 s).
    assert caught.value.retry_after == pytest.approx(6.0)
    backend.clock.now = T0 + 60 + 36.5
    await limiter.acquire([key(rpm=10)])


async def test_tokens_are_estimated_then_corrected(backend: Backend) -> None:
    limiter = backend.limiter()
    first = await limiter.acquire([key(tpm=100)], tokens=80)
    assert first.status.remaining_tokens == 20
    with pytest.raises(LimitExceededError) as caught:
        await limiter.acquire([key(tpm=100)], tokens=30)
    assert caught.value.param == "key.tpm"
    await limiter.release(first, tokens=10)  # the call used far less than estimated
    second = await limiter.acquire([key(tpm=100)], tokens=80)
    assert second.status.remaining_tokens == 10


async def test_a_request_larger_than_the_tpm_fits_only_an_empty_window(backend: Backend) -> None:
    limiter = backend.limiter()
    big = await limiter.acquire([key(tpm=100)], tokens=500)
    assert big.status.remaining_tokens == 0
    with pytest.raises(LimitExceededError):
        await limiter.acquire([key(tpm=100)], tokens=1)


async def test_max_parallel_counts_in_flight_and_release_frees(backend: Backend) -> None:
    limiter = backend.limiter()
    a = await limiter.acquire([key(max_parallel=2)])
    await limiter.acquire([key(max_parallel=2)])
    with pytest.raises(LimitExceededError) as caught:
        await limiter.acquire([key(max_parallel=2)])
    assert caught.value.param == "key.max_parallel"
    await limiter.release(a)
    await limiter.release(a)  # idempotent: frees one slot, not two
    await limiter.acquire([key(max_parallel=2)])
    with pytest.raises(LimitExceededError):
        await limiter.acquire([key(max_parallel=2)])


async def test_refund_undoes_the_admission(backend: Backend) -> None:
    limiter = backend.limiter()
    scopes = [key(rpm=1, tpm=50, max_parallel=1)]
    permit = await limiter.acquire(scopes, tokens=50)
    await limiter.refund(permit)
    again = await limiter.acquire(scopes, tokens=50)
    assert again.status.remaining_requests == 0 and again.status.remaining_tokens == 0


async def test_headers_report_the_tightest_scope(backend: Backend) -> None:
    limiter = backend.limiter()
    permit = await limiter.acquire([key(rpm=100, tpm=1000), team(rpm=3)], tokens=10)
    assert permit.status.headers() == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "2m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "990",
        "x-ratelimit-reset-tokens": "2m0s",
    }


async def test_end_users_of_different_keys_do_not_share(backend: Backend) -> None:
    limiter = backend.limiter()
    limits = Scope(limits=Limits(rpm=1))
    a = Principal(key_id="ka", end_user=limits)
    b = Principal(key_id="kb", end_user=limits)
    await limiter.acquire(limit_scopes(a, "alice"))
    await limiter.acquire(limit_scopes(b, "alice"))
    with pytest.raises(LimitExceededError) as caught:
        await limiter.acquire(limit_scopes(a, "alice"))
    assert caught.value.param == "user.rpm" and "'alice' of key ka" in caught.value.message


async def test_replicas_share_one_limit(backend: Backend) -> None:
    first, second = backend.limiter(), backend.limiter()
    await first.acquire([key(rpm=2)])
    await second.acquire([key(rpm=2)])
    with pytest.raises(LimitExceededError):
        await first.acquire([key(rpm=2)])


async def test_token_correction_lands_in_the_charged_window(backend: Backend) -> None:
    limiter = backend.limiter()
    permit = await limiter.acquire([key(tpm=100)], tokens=100)
    backend.clock.now = T0 + 60  # next window: last minute counts fully at its very start
    with pytest.raises(LimitExceededError):
        await limiter.acquire([key(tpm=100)], tokens=1)
    await limiter.release(permit, tokens=20)
    nxt = await limiter.acquire([key(tpm=100)], tokens=80)
    assert nxt.status.remaining_tokens == 0


# -- window arithmetic -------------------------------------------------------------------------


def test_weighted_wait_and_reset() -> None:
    assert weighted(10, 0, T0 + 15) == pytest.approx(7.5)
    assert wait_for(0, 5, 1, 5, T0) == pytest.approx(72.0)
    assert wait_for(10, 5, 1, 10, T0 + 30) == pytest.approx(6.0)
    assert wait_for(0, 0, 1, 10, T0) == 0.0
    assert until_reset(3, 0, T0 + 45) == pytest.approx(15.0)
    assert until_reset(3, 1, T0 + 45) == pytest.approx(75.0)
    assert until_reset(0, 0, T0) == 0.0


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.02, "20ms"), (1.5, "1.5s"), (59.01, "59.1s"), (360, "6m0s")]
)
def test_duration_format(seconds: float, text: str) -> None:
    assert duration(seconds) == text


async def test_reset_headers_and_retry_after_answer_different_questions(backend: Backend) -> None:
    """`x-ratelimit-reset-requests` (OpenAI's meaning): when the counter is back to its initial,
    empty state. `Retry-After`: when the refused request would fit. With a sliding window the
    first is later (up to two minutes); docs/access.md says so with this example."""
    limiter = backend.limiter()
    backend.clock.now = T0 + 28  # 32 s left in this minute
    for _ in range(5):
        permit = await limiter.acquire([key(rpm=5)])
    headers = permit.status.headers()
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m32s"  # 32 s + the next minute
    with pytest.raises(LimitExceededError) as caught:
        await limiter.acquire([key(rpm=5)])
    wait = caught.value.retry_after
    assert wait == pytest.approx(32 + 12)  # the 5 weigh 4 once 1/5 of the next minute passed
    assert caught.value.headers["retry-after"] == "44" and "44s" in caught.value.message
    backend.clock.now = T0 + 28 + wait - 0.5
    with pytest.raises(LimitExceededError):
        await limiter.acquire([key(rpm=5)])
    backend.clock.now = T0 + 28 + wait  # Retry-After later: this one request fits
    await limiter.acquire([key(rpm=5)])
    backend.clock.now = T0 + 28 + 92 + 60  # reset later (of the newest charge): empty again
    assert (await limiter.acquire([key(rpm=5)])).status.remaining_requests == 4
