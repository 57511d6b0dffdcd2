"""The exact-cache backends against one contract: the in-process LRU and the real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from opsgate.cache import EntryMeta, ExactStore, MemoryStore, PurgeFilter
from opsgate.cache.redis_store import RedisStore
from tests.cache.helpers import REDIS_URL


def meta(
    ns: str = "team:a", model: str = "m", key: str = "k1", user: str | None = None
) -> EntryMeta:
    return EntryMeta(namespace=ns, model=model, key_id=key, end_user=user, created=1000.0)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ExactStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    prefix: str = request.getfixturevalue("redis_prefix")
    backend = RedisStore.from_url(REDIS_URL, prefix)
    yield backend
    await backend.aclose()


async def test_put_get_replace(store: ExactStore) -> None:
    assert await store.get("x") is None
    await store.put("x", b"one", meta(), 60)
    assert await store.get("x") == b"one"
    await store.put("x", b"two", meta(), 60)
    assert await store.get("x") == b"two"
    assert (await store.stats()).entries == 1


async def test_ttl(store: ExactStore) -> None:
    await store.put("short", b"v", meta(), 0.2)
    await store.put("long", b"v", meta(), 60)
    await asyncio.sleep(0.35)
    assert await store.get("short") is None
    assert await store.get("long") == b"v"


async def test_purge_by_each_field(store: ExactStore) -> None:
    await store.put("e1", b"v", meta(ns="team:a", key="k1", user="alice"), 60)
    await store.put("e2", b"v", meta(ns="team:a", key="k2", user="bob"), 60)
    await store.put("e3", b"v", meta(ns="team:b", key="k3", user="alice", model="other"), 60)
    await store.put("e4", b"v", meta(ns="team:b", key="k3"), 60)
    assert sorted(await store.purge(PurgeFilter(end_user="alice"))) == ["e1", "e3"]
    assert await store.purge(PurgeFilter(end_user="alice")) == []
    assert await store.purge(PurgeFilter(key_id="k2", model="m")) == ["e2"]
    assert await store.purge(PurgeFilter(namespace="team:a")) == []
    assert await store.purge(PurgeFilter(older_than=10**12)) == []
    assert await store.purge(PurgeFilter(entry="e4")) == ["e4"]
    assert (await store.stats()).entries == 0


async def test_purge_all_and_by_age(store: ExactStore) -> None:
    await store.put("old", b"v", meta(), 60)  # created 1000.0: decades ago
    await store.put("new", b"v", EntryMeta("team:a", "m", created=time.time()), 60)
    assert await store.purge(PurgeFilter(older_than=3600)) == ["old"]
    assert await store.purge(PurgeFilter()) == ["new"]


async def test_memory_lru_bounds_count_and_bytes() -> None:
    now = [0.0]
    store = MemoryStore(max_entries=3, max_bytes=10, clock=lambda: now[0])
    for key in "abc":
        await store.put(key, b"12", meta(), 60)
    assert await store.get("a") == b"12"  # a is now the most recently used
    await store.put("d", b"12", meta(), 60)
    assert await store.get("b") is None, "least recently used goes first"
    assert await store.get("a") == b"12"
    await store.put("big", b"1234567", meta(), 60)
    size = (await store.stats()).bytes
    assert size is not None and size <= 10
    await store.put("huge", b"x" * 11, meta(), 60)
    assert await store.get("huge") is None
    now[0] = 61.0
    assert await store.get("big") is None, "expired"


async def test_memory_erase_index_follows_replacement() -> None:
    store = MemoryStore()
    await store.put("e", b"v", meta(user="alice"), 60)
    await store.put("e", b"v", meta(user="bob"), 60)
    assert await store.purge(PurgeFilter(end_user="alice")) == []
    assert await store.purge(PurgeFilter(end_user="bob")) == ["e"]
