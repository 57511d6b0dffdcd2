"""Cross-replica invalidation: every gateway learns within a second that access data changed.

Three paths, cheapest first, each covering the one before it:

1. Redis pub/sub (when `OPSGATE_REDIS_URL` is set): the replica that made a change publishes on
   `<prefix>access:changed`; every replica clears its key cache the moment it hears it.
2. A Redis counter `<prefix>access:version`, INCR'd with each publish and read every
   `poll_interval` (0.5 s): a message lost while a subscriber reconnected still lands in time.
3. The database row `access_version`, bumped in the same transaction as the change itself:
   polled every 0.5 s without Redis (or while Redis is failing), and every
   `backstop_interval` (1 s) while Redis works, which covers a replica that committed and died
   before it could publish.

A change is always "clear the whole cache": changes are rare, a refill is one indexed read per
key in use, and a targeted invalidation would need every kind of change to name its keys.

The feed is not about keys as such: any part with a change counter in the database (the prompt
registry's label moves, for one) gets the same guarantee from a `ChangeFeed` of its own `topic`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger("opsgate.access")

OnChange = Callable[[], Awaitable[None]]


class VersionSource(Protocol):
    """A change counter in the database, bumped in the same transaction as each change."""

    async def version(self) -> int: ...


class ChangeFeed:
    def __init__(
        self,
        store: VersionSource,
        on_change: OnChange,
        *,
        redis_url: str | None = None,
        prefix: str = "opsgate:",
        topic: str = "access",
        poll_interval: float = 0.5,
        backstop_interval: float = 1.0,
    ) -> None:
        self._store = store
        self._on_change = on_change
        self._redis_url = redis_url
        self.topic = topic
        self.channel = f"{prefix}{topic}:changed"
        self.counter = f"{prefix}{topic}:version"
        self.poll_interval = poll_interval
        self.backstop_interval = backstop_interval
        self._redis: Any = None
        self.redis_healthy = False
        """True while subscribed; the database is then polled only as a slow backstop."""
        self._tasks: list[asyncio.Task[None]] = []
        self.db_version: int | None = None
        self.redis_version: bytes | None = None

    async def start(self) -> None:
        """Start listening. Nothing here waits on the database: the first poll (which also
        clears the cache once, harmlessly) finds the current version."""
        self._tasks.append(asyncio.create_task(self._poll_db(), name=f"{self.topic}-db-poll"))
        if self._redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(
                self._redis_url, socket_connect_timeout=2, socket_timeout=5
            )
            self._tasks.append(asyncio.create_task(self._listen(), name=f"{self.topic}-redis"))

    async def announce(self) -> None:
        """Tell the other replicas (after this one committed a change and cleared its cache)."""
        if self._redis is None:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(self.counter)
                pipe.publish(self.channel, b"changed")
                await pipe.execute()
        except Exception as exc:  # redis errors, OSError; the database poll still converges
            log.warning("could not announce an %s change on Redis: %s", self.topic, exc)

    async def _changed(self) -> None:
        try:
            await self._on_change()
        except Exception:
            log.exception("%s change handler failed", self.topic)

    async def _poll_db(self) -> None:
        failing = False
        while True:
            slow = self.redis_healthy
            await asyncio.sleep(self.backstop_interval if slow else self.poll_interval)
            try:
                version = await self._store.version()
            except Exception as exc:
                if not failing:
                    log.warning("cannot poll the %s version in the database: %s", self.topic, exc)
                failing = True
                continue
            failing = False
            if version != self.db_version:
                self.db_version = version
                await self._changed()

    async def _listen(self) -> None:
        """Subscribe and poll the counter; on any Redis error, back off and start again."""
        delay = 0.2
        while True:
            try:
                await self._subscribed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.redis_healthy = False
                log.warning(
                    "%s change feed lost Redis (%s); retrying in %.1fs", self.topic, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:  # pragma: no cover - _subscribed only returns by raising
                return

    async def _subscribed(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            self.redis_healthy = True
            await self._changed()  # messages may have been missed while unsubscribed
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self.poll_interval
                )
                if message is not None:
                    await self._changed()
                version = await self._redis.get(self.counter)
                if version != self.redis_version:
                    self.redis_version = version
                    await self._changed()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None
