"""Leases on Redis: in-flight things (parallel slots, budget holds) that free themselves.

A lease is a member of a sorted set scored by its expiry. Whoever reads the set first removes
expired members, so a replica that died (or lost Redis) stops holding slots or budget after
`ttl` seconds. A live replica renews all its leases in one pipelined round trip every `ttl / 3`,
so a stream that runs for ten minutes keeps its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("opsgate.access")

Clock = Callable[[], float]


class LeaseKeeper:
    """Renews this process's live leases in the background."""

    def __init__(self, client: Redis, *, ttl: float = 30.0, clock: Clock = time.time) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._live: dict[tuple[str, str], None] = {}
        self._task: asyncio.Task[None] | None = None

    def expiry(self) -> float:
        return self._clock() + self.ttl

    def hold(self, key: str, member: str) -> None:
        self._live[(key, member)] = None
        if self._task is None:
            self._start()

    def drop(self, key: str, member: str) -> None:
        self._live.pop((key, member), None)

    def __len__(self) -> int:
        return len(self._live)

    def _start(self) -> None:
        try:
            self._task = asyncio.get_running_loop().create_task(self._run())
        except RuntimeError:  # no loop: renewals start with the next hold inside one
            self._task = None

    async def renew(self) -> int:
        """Push every live lease's expiry forward; `XX` never revives a released one."""
        leases = list(self._live)
        if not leases:
            return 0
        expiry = self.expiry()
        async with self.client.pipeline(transaction=False) as pipe:
            for key, member in leases:
                pipe.zadd(key, {member: expiry}, xx=True)
            for key in {key for key, _ in leases}:
                pipe.expire(key, math.ceil(self.ttl * 4))
            await pipe.execute()
        return len(leases)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.renew()
            except (RedisError, OSError) as exc:
                log.warning("could not renew %d leases on Redis: %s", len(self._live), exc)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
