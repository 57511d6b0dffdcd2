"""The in-process semantic index: partitions, expiry, eviction, HNSW switch-over, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opsgate.cache.embed.hashing import HashingEmbedder
from opsgate.cache.plan import SemanticQuery
from opsgate.cache.semantic import store as store_module
from opsgate.cache.semantic.index import FlatIndex, UsearchIndex
from opsgate.cache.semantic.persist import load, save
from opsgate.cache.semantic.store import SemanticStore
from opsgate.cache.store import EntryMeta, PurgeFilter

META = EntryMeta("team:a", "m", "k1", None, 0.0)


def unit(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def query(text: str, partition: str = "p") -> SemanticQuery:
    return SemanticQuery(partition=partition, text=text)


async def test_search_add_forget_purge() -> None:
    store = SemanticStore(HashingEmbedder(256), threshold=0.7)
    await store.add(query("reset my password"), "k-pass", META, 60)
    await store.add(query("delete my account"), "k-del", EntryMeta("team:a", "m", "k1", "bob"), 60)
    assert [k for k, _ in await store.search(query("reset my password!"))] == ["k-pass"]
    assert await store.search(query("reset my password", partition="other")) == []
    assert await store.search(query("what is the weather")) == []
    assert await store.forget(["k-pass"]) == 1
    assert await store.search(query("reset my password")) == []
    assert await store.purge(PurgeFilter(end_user="bob")) == 1
    assert len(store) == 0 and store.parts == {}


async def test_same_answer_key_replaces_its_question() -> None:
    store = SemanticStore(HashingEmbedder(256), threshold=0.7)
    await store.add(query("reset my password"), "k", META, 60)
    await store.add(query("reset my password"), "k", META, 60)
    assert len(store) == 1


async def test_expired_entries_are_not_found_and_evicted_first() -> None:
    now = [1000.0]
    store = SemanticStore(HashingEmbedder(256), threshold=0.5, max_entries=3, clock=lambda: now[0])
    await store.add(query("short lived question"), "old", META, 10)
    now[0] += 11
    assert await store.search(query("short lived question")) == []
    for i in range(3):
        await store.add(query(f"question number {i}"), f"k{i}", META, 60)
    assert "old" not in store.by_key, "the expired entry went first"
    assert len(store) <= 3


async def test_auto_switches_a_growing_partition_to_hnsw_off_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_module, "ANN_FROM", 50)
    rng = np.random.default_rng(1)
    rows = unit(rng, 80)
    store = SemanticStore(HashingEmbedder(32), threshold=0.99)
    for i in range(60):
        store.insert("p", f"k{i}", META, 10**12, rows[i])
    assert "p" in store.moving, "the HNSW build runs in a worker thread"
    assert isinstance(store.parts["p"], FlatIndex), "exact search serves meanwhile"
    for i in range(60, 80):
        store.insert("p", f"k{i}", META, 10**12, rows[i])
    await store.forget(["k3"])
    await store.wait_builds()
    part = store.parts["p"]
    assert isinstance(part, UsearchIndex) and len(part) == 79
    assert store.nearest("p", rows[70])[0][0] == "k70", "added during the build"
    assert all(k != "k3" for k, _ in store.nearest("p", rows[3])), "removed during the build"


async def test_save_and_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "ANN_FROM", 20)
    rng = np.random.default_rng(2)
    rows = unit(rng, 30)
    store = SemanticStore(HashingEmbedder(32), threshold=0.99)
    for i in range(30):
        store.insert("big", f"b{i}", META, 10**12, rows[i])
    store.insert("small", "s0", EntryMeta("team:b", "m", None, "eve", 1.0), 10**12, rows[0])
    store.insert("small", "gone", META, 1.0, rows[1])  # already expired
    await store.wait_builds()
    save(store, tmp_path / "idx")

    again = SemanticStore(HashingEmbedder(32), threshold=0.99)
    assert load(again, tmp_path / "idx") == 31
    assert isinstance(again.parts["big"], UsearchIndex)
    assert again.nearest("big", rows[7])[0][0] == "b7"
    assert again.nearest("small", rows[0])[0][0] == "s0"
    assert again.entries[again.by_key["s0"]].meta.end_user == "eve"
    assert again.next_id == store.next_id

    other = SemanticStore(HashingEmbedder(64))
    assert load(other, tmp_path / "idx") == 0, "another embedder's vectors are ignored"


async def test_aclose_saves_to_its_path(tmp_path: Path) -> None:
    store = SemanticStore(HashingEmbedder(64), path=tmp_path / "sem")
    await store.add(query("hello there"), "k", META, 60)
    await store.aclose()
    again = SemanticStore(HashingEmbedder(64), threshold=0.9)
    assert load(again, tmp_path / "sem") == 1
    assert [k for k, _ in await again.search(query("hello there"))] == ["k"]
