"""The score writer against a real PostgreSQL cut off by a proxy: scores wait (and the queue
refuses more once full) while the database is down, are written once it answers, and what a
stop cannot write is spilled to a file the next start writes. Nothing accepted is lost."""

from __future__ import annotations

import time
from pathlib import Path

from opsgate.feedback import Score, ScoreQuery, SqlScoreStore
from opsgate.feedback.writer import ScoreWriter
from opsgate.store import dispose_engine, make_engine
from tests.store.conftest import Backend, eventually, pg_backend, proxy  # noqa: F401 (fixtures)
from tests.store.proxy import TcpProxy


def score(i: int) -> Score:
    return Score(
        score_id=f"sc-{i:05d}",
        metric="thumbs",
        type="boolean",
        source="api",
        created_at=time.time(),
        trace_id=f"tr-{i}",
        value=1.0,
        team_id="team-a",
    )


async def stored(store: SqlScoreStore) -> set[str]:
    page = await store.list_scores(ScoreQuery(limit=1000))
    return {s.score_id for s in page.items}


async def test_an_outage_delays_scores_and_a_stop_spills_them(
    pg_backend: Backend,  # noqa: F811
    proxy: TcpProxy,  # noqa: F811
    tmp_path: Path,
) -> None:
    direct = make_engine(pg_backend.url)
    cut_off = make_engine(pg_backend.url_via(proxy.port))
    spill = tmp_path / "journal.jsonl.scores"
    try:
        reads = SqlScoreStore(direct)
        writer = ScoreWriter(
            SqlScoreStore(cut_off),
            capacity=50,
            batch_size=10,
            flush_interval=0.01,
            retry_min=0.05,
            retry_max=0.2,
        )
        await writer.start(spill)
        assert writer.offer([score(i) for i in range(20)])
        await writer.flush()
        assert len(await stored(reads)) == 20

        proxy.cut()
        assert writer.offer([score(i) for i in range(20, 40)])
        await eventually(lambda: writer.stats.failures > 0)
        assert not writer.offer([score(i) for i in range(40, 71)])  # 20 wait, 31 do not fit
        assert writer.offer([score(i) for i in range(40, 70)])  # all or none: these fit
        proxy.restore()
        await writer.flush()
        assert len(await stored(reads)) == 70

        proxy.cut()
        assert writer.offer([score(i) for i in range(70, 85)])
        await eventually(lambda: writer.stats.failures > 1)
        await writer.stop(timeout=0.5)
        assert writer.stats.spilled == 15 and spill.exists()
        proxy.restore()

        again = ScoreWriter(SqlScoreStore(cut_off), retry_min=0.05)
        await again.start(spill)
        await eventually(lambda: again.stats.replayed == 15)
        assert await stored(reads) == {f"sc-{i:05d}" for i in range(85)}
        await again.stop()
        assert not spill.exists()
    finally:
        await dispose_engine(cut_off)
        await dispose_engine(direct)
