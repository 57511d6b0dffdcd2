"""The semantic cache shared by replicas: each keeps its own in-process index (lookups stay
sub-millisecond and local) and they keep each other in step through one Redis stream.

Why Redis and not PostgreSQL: the exact cache already shares answers through Redis, so a
semantic entry (which only points at an answer there) belongs next to it; neither server here
has a vector extension (no RediSearch, no pgvector), and a log that every replica tails is
what a Redis stream is. Each add, purge and forget is appended to `P s:log` (capped near
`max_entries` adds); a replica replays the stream from the start when it begins, then follows
it, skipping its own records. A replica that falls behind only misses for a moment; it never
serves another tenant's answer, because the partition travels with each entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from opsgate.cache.errors import CacheUnavailableError
from opsgate.cache.plan import SemanticQuery
from opsgate.cache.semantic.store import SemanticStore
from opsgate.cache.store import EntryMeta, PurgeFilter

log = logging.getLogger("opsgate.cache")
BATCH = 500
BLOCK_MS = 1000


class SharedSemanticStore:
    """Implements the service's `SemanticIndex`: a local `SemanticStore` plus the stream."""

    def __init__(
        self, local: SemanticStore, url: str, prefix: str, *, timeout: float = 0.5
    ) -> None:
        self.local = local
        self.stream = f"{prefix}s:log"
        self.origin = uuid.uuid4().hex
        self.last_id = "0-0"
        self.writer = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.reader = Redis.from_url(url, socket_connect_timeout=timeout)  # blocks on XREAD
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Follow the stream (from its start) in the background; idempotent."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def search(self, query: SemanticQuery) -> list[tuple[str, float]]:
        self.start()
        return await self.local.search(query)

    async def add(self, query: SemanticQuery, key: str, meta: EntryMeta, ttl: float) -> None:
        self.start()
        vector = await self.local.vector(query)
        expires = self.local.clock() + ttl
        self.local.insert(query.partition, key, meta, expires, vector)
        record = {"p": query.partition, "k": key, "m": _meta(meta), "x": expires}
        await self._publish("add", record, np.asarray(vector, dtype=np.float32).tobytes())

    async def purge(self, match: PurgeFilter) -> int:
        gone = await self.local.purge(match)
        await self._publish("purge", dataclasses.asdict(match))
        return gone

    async def forget(self, keys: Sequence[str]) -> int:
        gone = await self.local.forget(keys)
        if keys:
            await self._publish("forget", {"keys": list(keys)})
        return gone

    async def _publish(self, op: str, record: dict[str, Any], vector: bytes = b"") -> None:
        fields: dict[FieldT, EncodableT] = {
            "o": self.origin,
            "op": op,
            "r": orjson.dumps(record),
            "v": vector,
        }
        cap = self.local.max_entries if op == "add" else None
        try:
            await self.writer.xadd(self.stream, fields, maxlen=cap, approximate=True)
        except RedisError as exc:
            raise CacheUnavailableError(f"redis: {exc}") from exc

    async def _follow(self) -> None:
        while True:
            try:
                found: Any = await self.reader.xread(
                    {self.stream: self.last_id}, count=BATCH, block=BLOCK_MS
                )
            except RedisError as exc:
                log.warning("semantic cache stream: %s; retrying", exc)
                await asyncio.sleep(1.0)
                continue
            for _, records in found or ():
                for record_id, fields in records:
                    self.last_id = record_id.decode()
                    if fields.get(b"o", b"").decode() != self.origin:
                        await self._apply(fields)

    async def _apply(self, fields: dict[bytes, bytes]) -> None:
        op, record = fields[b"op"].decode(), orjson.loads(fields[b"r"])
        if op == "add" and record["x"] > self.local.clock():
            vector = np.frombuffer(fields[b"v"], dtype=np.float32)
            self.local.insert(
                record["p"], record["k"], EntryMeta(*record["m"]), record["x"], vector
            )
        elif op == "purge":
            await self.local.purge(PurgeFilter(**record))
        elif op == "forget":
            await self.local.forget(record["keys"])

    async def stats(self) -> dict[str, Any]:
        out = await self.local.stats()
        out["shared"] = {"stream": self.stream, "following": self._task is not None}
        return out

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.local.aclose()
        await self.writer.aclose()
        await self.reader.aclose()


def _meta(meta: EntryMeta) -> list[Any]:
    return [meta.namespace, meta.model, meta.key_id, meta.end_user, meta.created]
