"""What only the Redis limiter must show: one limit across processes, and crash-safe slots."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from opsgate.access.limits.model import LimitExceededError, LimitScope, ScopeRef
from opsgate.access.limits.redis import RedisRateLimiter
from opsgate.access.principal import Limits
from tests.access.test_limits import T0, Clock
from tests.fixtures.redisdb import REDIS_URL, redis_prefix

WORKER = """
import asyncio, sys, time
from redis.asyncio import Redis
from opsgate.access.limits.model import LimitExceededError, LimitScope, ScopeRef
from opsgate.access.limits.redis import RedisRateLimiter
from opsgate.access.principal import Limits

async def main(url, prefix, limit, attempts):
    client = Redis.from_url(url)
    limiter = RedisRateLimiter(client, prefix=prefix)
    scopes = [LimitScope(ScopeRef("key", "shared"), Limits(rpm=limit))]
    await client.ping()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the test starts both at once
    admitted = 0

    async def one():
        nonlocal admitted
        try:
            await limiter.acquire(scopes)
            admitted += 1
        except LimitExceededError:
            pass

    for done in range(0, attempts, 20):
        await asyncio.gather(*(one() for _ in range(min(20, attempts - done))))
    print(admitted)
    await limiter.aclose()
    await client.aclose()

url, prefix, limit, attempts = sys.argv[1:5]
asyncio.run(main(url, prefix, int(limit), int(attempts)))
"""


async def test_two_processes_enforce_one_combined_rpm() -> None:
    limit, attempts = 200, 300
    async with redis_prefix() as (_, prefix):
        args = [REDIS_URL, prefix, str(limit), str(attempts)]
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WORKER,
                *args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for p in procs:  # both have imported and connected before either starts
            assert p.stdout is not None
            assert (await asyncio.wait_for(p.stdout.readline(), 60)).strip() == b"ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
        await asyncio.gather(*(p.stdin.drain() for p in procs if p.stdin is not None))
        outputs = [await p.communicate() for p in procs]
        assert all(p.returncode == 0 for p in procs)
        admitted = [int(out.strip()) for out, _ in outputs]
    assert all(n > 0 for n in admitted), admitted  # both processes took part
    assert abs(sum(admitted) - limit) <= 0.05 * limit, admitted


async def test_a_dead_replicas_parallel_slots_free_themselves() -> None:
    clock = Clock()
    scope = [LimitScope(ScopeRef("key", "k"), Limits(max_parallel=1))]
    async with redis_prefix() as (client, prefix):
        dead = RedisRateLimiter(client, prefix=prefix, clock=clock, lease_ttl=30)
        alive = RedisRateLimiter(client, prefix=prefix, clock=clock, lease_ttl=30)
        await dead.acquire(scope)  # and then the replica dies without releasing
        await dead.aclose()
        with pytest.raises(LimitExceededError):
            await alive.acquire(scope)
        clock.now = T0 + 31
        permit = await alive.acquire(scope)
        await alive.release(permit)
        await alive.aclose()


async def test_a_live_replica_renews_its_leases() -> None:
    clock = Clock()
    scope = [LimitScope(ScopeRef("key", "k"), Limits(max_parallel=1))]
    async with redis_prefix() as (client, prefix):
        streaming = RedisRateLimiter(client, prefix=prefix, clock=clock, lease_ttl=30)
        other = RedisRateLimiter(client, prefix=prefix, clock=clock, lease_ttl=30)
        permit = await streaming.acquire(scope)
        clock.now = T0 + 20
        assert await streaming.keeper.renew() == 1
        clock.now = T0 + 45  # past the first expiry, within the renewed one
        with pytest.raises(LimitExceededError):
            await other.acquire(scope)
        await streaming.release(permit)
        assert len(streaming.keeper) == 0
        await other.acquire(scope)
        await streaming.aclose()
        await other.aclose()


async def test_keys_expire_and_stay_under_the_prefix() -> None:
    scope = [LimitScope(ScopeRef("team", "t:1{x}"), Limits(rpm=5, tpm=100, max_parallel=2))]
    async with redis_prefix() as (client, prefix):
        limiter = RedisRateLimiter(client, prefix=prefix)
        permit = await limiter.acquire(scope, tokens=10)
        keys = [k.decode() async for k in client.scan_iter(match=f"{prefix}*")]
        assert keys and all(k.startswith(prefix) for k in keys)
        assert all(ttl > 0 for ttl in [await client.ttl(k) for k in keys])
        assert any("t%3A1%7Bx%7D" in k for k in keys)  # ids cannot break the key layout
        await limiter.release(permit, tokens=12)
        await limiter.aclose()
