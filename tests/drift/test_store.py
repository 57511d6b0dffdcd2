"""The drift store on SQLite and PostgreSQL: a huge window is read sampled (at most the limit,
spread over the window), scope filters apply, and samples are erased with their end user and
swept by retention."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from opsgate.config.compliance import RetentionConfig
from opsgate.config.drift import DriftScope
from opsgate.drift.holders import DriftRetention, DriftSamples
from opsgate.drift.store import DriftStore, Window
from opsgate.store import dispose_engine, make_engine
from tests.store.conftest import Backend, backend, empty_backend  # noqa: F401 (fixtures)

DAY = 86_400.0


def sample(i: int, at: float, **more: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trace_id": os.urandom(16).hex(),
        "created_at": at,
        "model": "m",
        "prompt_name": None,
        "key_id": "k",
        "team_id": "t",
        "user_id": None,
        "end_user": f"u{i % 10}",
        "prompt_chars": i,
        "answer_chars": None,
        "completion_tokens": 1,
        "language": "en",
        "refusal": False,
        "finish_reason": "stop",
        "tool_calls": False,
        "json_valid": None,
        "embedder": None,
        "embedding": None,
    }
    return row | more


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[DriftStore]:  # noqa: F811
    engine = make_engine(backend.url)
    yield DriftStore(engine)
    await dispose_engine(engine)


async def test_a_huge_window_is_read_sampled_and_bounded(store: DriftStore) -> None:
    now = time.time()
    rows = [sample(i, now - 3000 + i) for i in range(3000)]
    for start in range(0, len(rows), 500):
        await store.add_samples(rows[start : start + 500])
    picked = await store.samples(DriftScope(), Window(now - 4000, now + 1), 200)
    assert len(picked) == 200
    order = sorted(r["prompt_chars"] for r in picked)  # i doubles as the position in time
    assert order[0] < 500 and order[-1] > 2500  # spread over the window, not its first rows
    assert await store.count_samples(DriftScope(), Window(now - 4000, now + 1)) == 3000
    assert await store.samples(DriftScope(model="other"), Window(now - 4000, now + 1), 10) == []
    empty = await store.samples(DriftScope(), Window(now + 10, now + 20), 10)
    assert empty == []


async def test_erasure_and_retention(store: DriftStore) -> None:
    now = time.time()
    await store.add_samples([sample(i, now - (40 * DAY if i < 5 else 0)) for i in range(20)])
    holder = DriftSamples(store)
    exported = await holder.export("u3")
    assert len(exported) == 2 and "embedding" not in exported[0]
    assert await holder.erase("u3") == {"drift_samples": 2}
    assert await holder.export("u3") == []
    config = RetentionConfig.model_validate({"default": {"traces_days": 30}})
    assert await DriftRetention(store).sweep(config, now) == 4  # u3's old one is gone already
    assert await store.count_samples(DriftScope(), Window(0, now + 1)) == 14
