"""The eval store on SQLite and the real PostgreSQL: runs, idempotent results, resume keys,
paging, the migration matching the tables, summaries and paired comparison from stored rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from opsgate.evals.runs import EvalStore, ResultRow, compare, summarise
from opsgate.evals.runs import store as store_module
from opsgate.store import dispose_engine, make_engine
from opsgate.store.migrate import VERSION_TABLE
from opsgate.store.tables.traces import metadata
from tests.store.conftest import Backend, backend, empty_backend  # noqa: F401 (fixtures)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[EvalStore]:  # noqa: F811
    engine = make_engine(backend.url)
    try:
        yield EvalStore(engine)
    finally:
        await dispose_engine(engine)


def _row(run: str, i: int, value: float | None, target: str = "m", cost: int = 10) -> ResultRow:
    score = {"value": value, "label": None, "reason": "", "error": None if value is not None
             else "row has no `expected`"}  # fmt: skip
    return ResultRow(run, target, i, "ok", {"exact": score}, cost_micros=cost, latency_ms=i)


def _eval_diffs(conn: Connection) -> list[object]:
    context = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
    )
    return [d for d in compare_metadata(context, metadata) if "eval_" in repr(d)]


async def test_the_migration_matches_the_tables(store: EvalStore) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_eval_diffs) == []


async def test_results_are_stored_once_and_counted(store: EvalStore) -> None:
    run = await store.create("t", {"name": "t"}, "rows.jsonl", owner="cli", team_id="team-a")
    assert run.status == "running" and run.id.startswith("eval_")
    await store.add_results([_row(run.id, i, 1.0) for i in range(3)])
    await store.add_results([_row(run.id, 2, 0.0), _row(run.id, 3, 0.0)])  # 2 is kept as is
    assert await store.done_keys(run.id) == {("m", 0), ("m", 1), ("m", 2), ("m", 3)}
    found = await store.get(run.id)
    assert found is not None and (found.rows_done, found.cost_micros) == (4, 40)
    values = [r.scores["exact"]["value"] async for page in store.results(run.id) for r in page]
    assert values == [1.0, 1.0, 1.0, 0.0]
    await store.set_status(run.id, "budget_exceeded", summary={"targets": {}})
    found = await store.get(run.id)
    assert found is not None and found.status == "budget_exceeded" and found.finished_at
    assert [r.id for r in await store.runs({"team_id": "team-a"})] == [run.id]
    assert [r.id for r in await store.runs({"key_id": "cli"})] == [run.id]
    assert await store.runs({"team_id": "team-b"}) == []
    assert await store.runs({"user_id": "u1"}) == []


async def test_results_page_in_order(store: EvalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "PAGE", 3)
    run = await store.create("t", {}, "d")
    rows = [_row(run.id, i, 1.0, target) for target in ("b", "a") for i in range(4)]
    await store.add_results(rows)
    pages = [[(r.target, r.row_index) for r in page] async for page in store.results(run.id)]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [key for p in pages for key in p] == [(t, i) for t in ("a", "b") for i in range(4)]


async def test_summary_and_paired_comparison(store: EvalStore) -> None:
    base = await store.create("t", {}, "d")
    better = await store.create("t", {}, "d")
    await store.add_results([_row(base.id, i, v) for i, v in enumerate([0.0, 1.0, 0.0, None])])
    await store.add_results([_row(better.id, i, v, "other")
                             for i, v in enumerate([0.0, 1.0, 1.0, 1.0])])  # fmt: skip
    summary = await summarise(store, base.id, ["exact"])
    target = summary["targets"]["m"]
    assert (target["rows"], target["failed"], target["cost_usd"]) == (4, 0, 0.00004)
    assert target["latency_p50_ms"] == 1.5
    assert target["scorers"]["exact"] == {"n": 3, "mean": pytest.approx(1 / 3), "low": 0.0,
                                          "high": 1.0, "failed": 1}  # fmt: skip
    (c,) = await compare(store, base.id, better.id)  # one target each: paired across names
    assert (c.target_a, c.target_b, c.scorer) == ("m", "other", "exact")
    assert c.paired.n == 3  # row 3 has no score in the base run
    assert c.paired.diff == pytest.approx(1 / 3)
