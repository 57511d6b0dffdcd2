"""Scores are personal data: exported and erased with their end user (a score posted after the
erasure finds no trace), deleted by retention, and reported to OpenTelemetry and Prometheus."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from opsgate.config.compliance import RetentionConfig
from opsgate.feedback import Score, ScoreQuery, SqlScoreStore
from opsgate.feedback.holders import ScoreRetention
from opsgate.telemetry.otel import request_span_id
from tests.feedback.conftest import FbStarter
from tests.feedback.test_api import ok, refused, wait_scores

T0 = 1_700_000_000.0
DAY = 86_400.0


@pytest.mark.integration
def test_erasure_removes_an_end_users_scores(
    database_url: str, feedback_gateway: FbStarter
) -> None:
    fb = feedback_gateway(database_url)
    key = fb.key("service", "a")
    mine = fb.chat(key, session="conv-e", user="eve")
    theirs = fb.chat(key, user="mallory")
    for trace, comment in ((mine, "mine"), (theirs, "theirs")):
        body = {"trace_id": trace.trace_id, "metric": "thumbs", "value": True, "comment": comment}
        ok(fb.post(body, key=key))
    ok(fb.post({"session_id": "conv-e", "metric": "resolved", "value": True}, key=key))
    wait_scores(fb, 3)
    export = fb.admin.ok("GET", "/admin/v1/end-users/eve/export")
    assert sorted(s["metric"] for s in export["data"]["scores"]) == ["resolved", "thumbs"]
    assert "scores" not in export["data"]["tables"]  # the holder of its own, not the sweep
    receipt = fb.admin.ok("DELETE", "/admin/v1/end-users/eve")
    assert receipt["counts"]["scores"] == 2
    [left] = fb.scores()
    assert left["comment"] == "theirs"
    late = {"trace_id": mine.trace_id, "metric": "rating", "value": 3}
    refused(fb.post(late, key=key), 404, "trace_not_found")


@pytest.mark.integration
def test_scores_become_evaluation_events_and_counters(
    database_url: str, feedback_gateway: FbStarter
) -> None:
    fb = feedback_gateway(database_url)
    answer = fb.chat(fb.key("service", "a"))
    body = {"trace_id": answer.trace_id, "metric": "rating", "value": 4, "comment": "good"}
    ok(fb.post(body, key=fb.key("service", "a")))
    ok(fb.post({"trace_id": answer.trace_id, "metric": "issue", "value": "too_long"}))
    spans = {s.name: s for s in fb.spans.get_finished_spans()}
    request = spans["chat gpt-4o-mini"]
    rating = spans["evaluation rating"]
    assert rating.context.trace_id == request.context.trace_id == int(answer.trace_id, 16)
    assert rating.parent is not None
    assert rating.parent.span_id == request.context.span_id == request_span_id(answer.trace_id)
    [event] = rating.events
    assert event.name == "gen_ai.evaluation.result"
    assert dict(event.attributes or {}) == {
        "gen_ai.evaluation.name": "rating",
        "gen_ai.evaluation.score.value": 4.0,
        "gen_ai.evaluation.explanation": "good",
    }
    [issue] = spans["evaluation issue"].events
    assert (issue.attributes or {})["gen_ai.evaluation.score.label"] == "too_long"
    wait_scores(fb, 2)
    text = httpx.get(f"{fb.server.base}/metrics").text
    assert 'opsgate_feedback_scores_total{metric="rating",source="api"} 1.0' in text
    assert 'opsgate_feedback_scores_total{metric="issue",source="api"} 1.0' in text
    deadline = time.monotonic() + 10
    while "opsgate_feedback_written_total 2.0" not in text and time.monotonic() < deadline:
        time.sleep(0.05)
        text = httpx.get(f"{fb.server.base}/metrics").text
    assert "opsgate_feedback_written_total 2.0" in text


def score(i: int, **fields: Any) -> Score:
    values: dict[str, Any] = {
        "score_id": f"sc-{i}",
        "metric": "thumbs",
        "type": "boolean",
        "source": "api",
        "value": 1.0,
        "created_at": T0 - i * DAY,
        "team_id": "team-a",
        "key_id": "key-a",
    }
    return Score(**{**values, **fields})


async def test_retention_deletes_scores_by_the_trace_policy(score_store: SqlScoreStore) -> None:
    await score_store.write_batch(
        [
            score(1),
            score(5),
            score(40),
            score(2, team_id="team-b", key_id="key-b"),
            score(9, team_id="team-b", key_id="key-vip"),
        ]
    )
    config = RetentionConfig.model_validate(
        {
            "default": {"traces_days": 30},
            "teams": {"team-b": {"traces_days": 1}},
            "keys": {"key-vip": {"traces_days": None}},
        }
    )
    sweep = ScoreRetention(score_store.engine)
    assert await sweep.sweep(config, T0) == 2  # sc-40 (default) and sc-2 (team-b)
    kept = await score_store.list_scores(ScoreQuery())
    assert sorted(s.score_id for s in kept.items) == ["sc-1", "sc-5", "sc-9"]
    assert await sweep.sweep(config, T0) == 0
