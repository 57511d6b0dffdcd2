"""The exact cache in Redis, shared by every gateway replica.

Layout under the configured prefix `P`:

- `P e:<key>`: a hash with the answer (`v`) and its metadata, expiring with the entry's TTL.
- `P x:all`, `P x:ns:<ns>`, `P x:model:<m>`, `P x:kid:<k>`, `P x:user:<u>`: sorted sets of
  entry keys scored by expiry time. Each write drops the expired members of the sets it touches,
  so they stay as large as the live entries; the sets expire with their last entry. Purges read
  the smallest matching set instead of scanning the keyspace.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from opsgate.cache.errors import CacheUnavailableError
from opsgate.cache.store import EntryMeta, PurgeFilter, StoreStats

_FIELDS = ("ns", "model", "kid", "user", "t")
_BATCH = 500


class RedisStore:
    name = "redis"

    def __init__(self, client: Redis, prefix: str = "opsgate:cache:") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "opsgate:cache:", timeout: float = 0.5) -> RedisStore:
        client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        return cls(client, prefix)

    def _entry(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    def _indexes(self, meta: EntryMeta) -> list[str]:
        p = self.prefix
        names = [f"{p}x:all", f"{p}x:ns:{meta.namespace}", f"{p}x:model:{meta.model}"]
        if meta.key_id:
            names.append(f"{p}x:kid:{meta.key_id}")
        if meta.end_user:
            names.append(f"{p}x:user:{meta.end_user}")
        return names

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.client.hget(self._entry(key), "v")
        except RedisError as exc:
            raise CacheUnavailableError(f"redis: {exc}") from exc
        return value.encode() if isinstance(value, str) else value

    async def put(self, key: str, value: bytes, meta: EntryMeta, ttl: float) -> None:
        now = time.time()
        expires, ttl_ms = now + ttl, max(1, int(ttl * 1000))
        mapping: dict[FieldT, EncodableT] = {
            "v": value,
            "ns": meta.namespace,
            "model": meta.model,
            "kid": meta.key_id or "",
            "user": meta.end_user or "",
            "t": repr(meta.created or now),
        }
        entry = self._entry(key)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(entry)
                pipe.hset(entry, mapping=mapping)
                pipe.pexpire(entry, ttl_ms)
                for index in self._indexes(meta):
                    pipe.zremrangebyscore(index, "-inf", now)
                    pipe.zadd(index, {key: expires})
                    pipe.pexpire(index, ttl_ms, nx=True)
                    pipe.pexpire(index, ttl_ms, gt=True)
                await pipe.execute()
        except RedisError as exc:
            raise CacheUnavailableError(f"redis: {exc}") from exc

    def _candidates_index(self, match: PurgeFilter) -> str:
        p = self.prefix
        if match.end_user is not None:
            return f"{p}x:user:{match.end_user}"
        if match.key_id is not None:
            return f"{p}x:kid:{match.key_id}"
        if match.namespace is not None:
            return f"{p}x:ns:{match.namespace}"
        if match.model is not None:
            return f"{p}x:model:{match.model}"
        return f"{p}x:all"

    async def purge(self, match: PurgeFilter) -> list[str]:
        try:
            if match.entry is not None:
                keys = [match.entry]
            else:
                raw = await self.client.zrange(self._candidates_index(match), 0, -1)
                keys = [k.decode() if isinstance(k, bytes) else str(k) for k in raw]
            gone: list[str] = []
            for start in range(0, len(keys), _BATCH):
                gone += await self._purge_batch(keys[start : start + _BATCH], match)
        except RedisError as exc:
            raise CacheUnavailableError(f"redis: {exc}") from exc
        return gone

    async def _purge_batch(self, keys: Sequence[str], match: PurgeFilter) -> list[str]:
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(self._entry(key), list(_FIELDS))
            rows: list[list[Any]] = await pipe.execute()
        now = time.time()
        doomed: list[tuple[str, EntryMeta]] = []
        for key, row in zip(keys, rows, strict=True):
            meta = _meta(row)
            if meta is not None and match.matches(key, meta, now):
                doomed.append((key, meta))
        if not doomed:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for key, meta in doomed:
                pipe.delete(self._entry(key))
                for index in self._indexes(meta):
                    pipe.zrem(index, key)
            results = await pipe.execute()
        per = [1 + len(self._indexes(meta)) for _, meta in doomed]
        gone, at = [], 0
        for (key, _), width in zip(doomed, per, strict=True):
            if results[at]:
                gone.append(key)
            at += width
        return gone

    async def stats(self) -> StoreStats:
        try:
            count = await self.client.zcount(f"{self.prefix}x:all", time.time(), "+inf")
        except RedisError as exc:
            raise CacheUnavailableError(f"redis: {exc}") from exc
        return StoreStats(self.name, int(count))

    async def aclose(self) -> None:
        await self.client.aclose()


def _meta(row: list[Any]) -> EntryMeta | None:
    if row[0] is None:
        return None
    ns, model, kid, user, created = (v.decode() if isinstance(v, bytes) else "" for v in row)
    return EntryMeta(
        namespace=ns,
        model=model,
        key_id=kid or None,
        end_user=user or None,
        created=float(created or 0),
    )
