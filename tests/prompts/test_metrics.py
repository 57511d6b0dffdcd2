"""Feedback per prompt version, on SQLite and PostgreSQL: scores written through the score
store, traces through the trace store, the mean of each metric grouped by the version each
trace rendered (boolean metrics as the rate of true; category scores left out)."""

from __future__ import annotations

from opsgate.feedback.scores import Score
from opsgate.feedback.scores_sql import SqlScoreStore
from opsgate.prompts.metrics import feedback_by_version
from opsgate.store import SqlTraceStore, dispose_engine, make_engine
from tests.store.conftest import Backend, make_trace


async def test_mean_of_each_metric_per_version(backend: Backend) -> None:
    engine = make_engine(backend.url)
    try:
        prompted = {
            1: ("triage", "1", "team-a"),
            2: ("triage", "1", "team-a"),
            3: ("triage", "2", "team-a"),
            4: ("triage", "2", "team-b"),  # the same name in another team
            5: ("other", "1", "team-a"),
        }
        traces = [
            make_trace(
                i, prompt_name=name, prompt_version=version, team_id=team, started_at=1000.0 + i
            )
            for i, (name, version, team) in prompted.items()
        ]
        await SqlTraceStore(engine).write_batch(traces)
        scores = []
        for n, (trace, helpful, rating) in enumerate(
            [(1, 1.0, 4.0), (2, 0.0, 2.0), (3, 1.0, 5.0), (4, 0.0, 1.0), (5, 0.0, 1.0)]
        ):
            trace_id = f"tr-{trace:06d}"
            scores += [
                Score(f"s{n}a", "helpful", "boolean", "end_user", 2000.0, trace_id, value=helpful),
                Score(f"s{n}b", "rating", "float", "api", 2000.0, trace_id, value=rating),
                Score(f"s{n}c", "topic", "category", "api", 2000.0, trace_id, label="x"),
            ]
        await SqlScoreStore(engine).write_batch(scores)

        found = await feedback_by_version(engine, "team-a", "triage", 0.0, 5000.0)
        means = {v: {m.metric: (m.mean, m.count) for m in ms} for v, ms in found.items()}
        assert means == {
            "1": {"helpful": (0.5, 2), "rating": (3.0, 2)},
            "2": {"helpful": (1.0, 1), "rating": (5.0, 1)},
        }
        early = await feedback_by_version(engine, "team-a", "triage", 0.0, 1002.0)
        assert {v: [(m.metric, m.mean) for m in ms] for v, ms in early.items()} == {
            "1": [("helpful", 1.0), ("rating", 4.0)]  # only trace 1 started in the range
        }
        assert await feedback_by_version(engine, "", "triage", 0.0, 5000.0) == {}
    finally:
        await dispose_engine(engine)
