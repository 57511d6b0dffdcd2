"""The SQL score store on SQLite and PostgreSQL: idempotent writes, listing with filters and
cursors, the joins by trace and session, rollups, and the erasure tombstone."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from opsgate.feedback import RollupQuery, Score, ScoreQuery, SqlScoreStore
from opsgate.store.erasures import record_erasure
from opsgate.store.queries import InvalidQueryError
from opsgate.store.tables.feedback import scores

T0 = 1_700_000_000.0


def score(i: int, **fields: Any) -> Score:
    values: dict[str, Any] = {
        "score_id": f"sc-{i:04d}",
        "metric": "thumbs",
        "type": "boolean",
        "source": "api",
        "created_at": T0 + i,
        "trace_id": f"tr-{i % 5}",
        "value": float(i % 2),
        "author": "key-1",
        "team_id": ("team-a", "team-b")[i % 2],
        "key_id": f"key-{i % 2}",
        "model": ("m1", "m2")[i % 2],
        "end_user": f"user-{i % 3}",
        "trace_started_at": T0 - 10,
    }
    values.update(fields)
    return Score(**values)


async def count(store: SqlScoreStore) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(scores))).scalar_one())


async def test_write_is_idempotent_and_round_trips(score_store: SqlScoreStore) -> None:
    full = score(
        1,
        comment="nul\x00 and ünïcode",
        correction={"role": "assistant", "content": "better"},
        metadata={"queue": "q1"},
        idempotency_key="idem-1",
    )
    batch = [full, *(score(i) for i in range(2, 10))]
    await score_store.write_batch(batch)
    await score_store.write_batch(batch)  # a replay adds nothing
    await score_store.write_batch([full, full])
    assert await count(score_store) == 9
    [back] = (await score_store.list_scores(ScoreQuery(trace_id="tr-1", team_id="team-b"))).items
    assert back.comment == "nul\ufffd and ünïcode"
    assert back.correction == {"role": "assistant", "content": "better"}
    assert back.metadata == {"queue": "q1"}
    assert back.typed_value is True and back.idempotency_key == "idem-1"


async def test_list_filters_and_pages_newest_first(score_store: SqlScoreStore) -> None:
    await score_store.write_batch([score(i) for i in range(30)])
    seen: list[str] = []
    cursor = None
    while True:
        page = await score_store.list_scores(ScoreQuery(team_id="team-a", limit=4, cursor=cursor))
        seen += [s.score_id for s in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"sc-{i:04d}" for i in range(28, -1, -2)]
    window = ScoreQuery(since=T0 + 10, until=T0 + 20, model="m2", limit=100)
    assert [s.score_id for s in (await score_store.list_scores(window)).items] == [
        f"sc-{i:04d}" for i in (19, 17, 15, 13, 11)
    ]
    with pytest.raises(InvalidQueryError):
        ScoreQuery(source="nobody")
    with pytest.raises(InvalidQueryError):
        ScoreQuery(cursor="not-a-cursor")


async def test_joins_by_trace_and_session(score_store: SqlScoreStore) -> None:
    await score_store.write_batch(
        [
            score(1, trace_id="tr-x"),
            score(2, trace_id="tr-x", metric="rating", type="float", value=4.0),
            score(3, trace_id=None, session_id="s1", metric="resolved", team_id="team-a"),
            score(4, trace_id=None, session_id="s1", metric="resolved", team_id="team-b"),
        ]
    )
    assert [s.metric for s in await score_store.for_traces(["tr-x"])] == ["thumbs", "rating"]
    assert await score_store.for_traces([]) == []
    mine = await score_store.for_sessions(["s1"], {"team_id": "team-a"})
    assert [s.score_id for s in mine] == ["sc-0003"]
    assert len(await score_store.for_sessions(["s1"], {})) == 2


async def test_rollup_means_rates_and_labels(score_store: SqlScoreStore) -> None:
    day = 86_400
    start = T0 - T0 % day
    batch = [
        score(1, created_at=start + 10, value=1.0, model="m1"),
        score(2, created_at=start + 20, value=0.0, model="m1"),
        score(3, created_at=start + 30, value=1.0, model="m1"),
        score(4, created_at=start + 40, value=1.0, model="m2"),
        score(5, created_at=start + day + 5, value=0.0, model="m1"),
        score(6, created_at=start + 50, metric="rating", type="float", value=2.0, model="m1"),
        score(7, created_at=start + 60, metric="rating", type="float", value=5.0, model="m1"),
        score(8, created_at=start + 70, metric="issue", type="category", value=None,
              label="wrong", model="m1"),
        score(9, created_at=start + 80, metric="issue", type="category", value=None,
              label="wrong", model="m1"),
        score(10, created_at=start + 90, metric="issue", type="category", value=None,
              label="unsafe", model=None),
    ]  # fmt: skip
    await score_store.write_batch(batch)
    query = RollupQuery(start, start + 2 * day, step=day, group_by=("model",))
    rows = {(r.bucket, r.group["model"]): r.metrics for r in await score_store.rollup(query)}
    assert set(rows) == {(int(start), ""), (int(start), "m1"), (int(start), "m2"),
                         (int(start + day), "m1")}  # fmt: skip
    m1 = rows[(int(start), "m1")]
    assert m1["thumbs"].count == 3 and m1["thumbs"].mean == pytest.approx(2 / 3)
    assert (m1["rating"].mean, m1["rating"].min, m1["rating"].max) == (3.5, 2.0, 5.0)
    assert (m1["issue"].count, m1["issue"].labels, m1["issue"].mean) == (2, {"wrong": 2}, None)
    assert rows[(int(start), "")]["issue"].labels == {"unsafe": 1}
    filtered = RollupQuery(start, start + 2 * day, step=60 * 10**9, filters={"model": "m1"})
    [total] = await score_store.rollup(filtered)
    assert total.bucket == 0 and total.metrics["thumbs"].count == 4


async def test_scores_of_an_erased_end_user_are_dropped(score_store: SqlScoreStore) -> None:
    await record_erasure(score_store.engine, "user-0", clock=lambda: T0)
    await score_store.write_batch(
        [
            score(3, end_user="user-0", trace_started_at=T0 - 5),  # began before: dropped
            score(6, end_user="user-0", trace_started_at=T0 + 5),  # the user came back
            score(4, end_user="user-1", trace_started_at=T0 - 5),
        ]
    )
    kept = (await score_store.list_scores(ScoreQuery())).items
    assert sorted(s.score_id for s in kept) == ["sc-0004", "sc-0006"]
