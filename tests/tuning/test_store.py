"""The tuning store on SQLite and PostgreSQL: one runner claims a queued job (a second finds
nothing), a job whose heart stopped is taken up again, a state change only from the states
named, an adapter name taken while a job is active, and the erasure taint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from opsgate.store import dispose_engine, make_engine
from opsgate.tuning.store import TuningStore
from tests.store.conftest import Backend, backend, empty_backend  # noqa: F401


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[TuningStore]:  # noqa: F811
    engine = make_engine(backend.url)
    try:
        yield TuningStore(engine)
    finally:
        await dispose_engine(engine)


def _job(job_id: str, created: float, adapter: str = "a1", team: str = "team-a") -> dict[str, Any]:
    return {
        "id": job_id,
        "team_id": team,
        "created_by": "master",
        "created_at": created,
        "updated_at": created,
        "status": "queued",
        "cancel_requested": 0,
        "dataset_id": "ds_1",
        "dataset_version": 1,
        "base": "/models/base",
        "base_fingerprint": "f" * 16,
        "adapter": adapter,
        "settings": {"rank": 8},
        "examples": {"train": 8, "validation": 2},
        "steps": 0,
        "losses": [],
        "metrics": {},
        "tainted_subjects": 0,
    }


async def test_claims_state_changes_and_the_taint(store: TuningStore) -> None:
    await store.insert_job(_job("tj_1", 10.0), ["ada", "bob"])
    await store.insert_job(_job("tj_2", 20.0, adapter="a2", team="team-b"), ["ada"])
    assert await store.adapter_taken("a1") and not await store.adapter_taken("zz")

    first = await store.claim(100.0, stale_after=60)
    assert first is not None and first["id"] == "tj_1" and first["status"] == "running"
    second = await store.claim(100.0, stale_after=60)
    assert second is not None and second["id"] == "tj_2"
    assert await store.claim(100.0, stale_after=60) is None  # both are taken, hearts beating
    again = await store.claim(200.0, stale_after=60)  # tj_1's heart stopped at 100
    assert again is not None and again["id"] == "tj_1" and again["heartbeat_at"] == 200.0

    assert not await store.update("tj_1", {"status": "cancelled"}, status_in=("queued",))
    assert await store.update("tj_1", {"status": "succeeded"}, status_in=("running",))
    assert [j["id"] for j in await store.jobs(["team-a"])] == ["tj_1"]
    assert [j["id"] for j in await store.jobs(None, status="running")] == ["tj_2"]
    adapter = {
        "name": "a1",
        "team_id": "team-a",
        "base": "/models/base",
        "base_fingerprint": "f" * 16,
        "dataset_id": "ds_1",
        "dataset_version": 1,
        "job_id": "tj_1",
        "metrics": {"steps": 3},
        "path": "/tmp/none",
        "created_by": "master",
        "created_at": 300.0,
        "tainted_at": None,
    }
    await store.insert_adapter(adapter)
    assert await store.adapter_taken("a1")  # registered, though its job has ended

    assert [t["id"] for t in await store.trained_on("ada")] == ["tj_1", "tj_2"]
    jobs, adapters = await store.taint("ada", 400.0)
    assert sorted(jobs) == ["tj_1", "tj_2"] and adapters == 1
    assert (await store.job("tj_1") or {})["tainted_at"] == 400.0
    assert (await store.adapter("a1") or {})["tainted_at"] == 400.0
    assert await store.trained_on("ada") == []  # the end user's id is gone
    assert [t["id"] for t in await store.trained_on("bob")] == ["tj_1"]
    assert await store.taint("ada", 500.0) == ([], 0)
    assert await store.delete_adapter("a1") and not await store.delete_adapter("a1")
