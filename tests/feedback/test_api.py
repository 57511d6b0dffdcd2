"""`POST /v1/feedback` and the admin reads on a real gateway (SQLite and PostgreSQL): the
official openai SDK makes the answers, scores go over HTTP with keys of two seeded teams."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.feedback.conftest import Fb, FbStarter

pytestmark = pytest.mark.integration


def ok(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def refused(resp: httpx.Response, status: int, code: str, param: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error


def wait_scores(fb: Fb, count: int, **params: str) -> list[dict[str, Any]]:
    """The admin list once the background writer has stored `count` scores (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        found = fb.scores(**params)
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, found
            return found
        time.sleep(0.05)


def test_an_application_scores_its_answer_and_admins_read_it(
    database_url: str, feedback_gateway: FbStarter
) -> None:
    fb = feedback_gateway(database_url)
    app_key = fb.key("service", "a")
    answer = fb.chat(app_key)
    body = {
        "trace_id": answer.trace_id,
        "metric": "thumbs",
        "value": False,
        "comment": "wrong capital",
        "correction": "The capital of Australia is Canberra.",
        "metadata": {"screen": "chat"},
    }
    [ack] = ok(fb.post(body, key=app_key))
    assert ack["id"].startswith("sc_") and ack["source"] == "api" and ack["value"] is False
    assert "team_id" not in ack and "end_user" not in ack
    [stored] = wait_scores(fb, 1)
    assert stored["id"] == ack["id"] and stored["trace_id"] == answer.trace_id
    assert stored["team_id"] == "team-a" and stored["author"] == fb.world.key_ids["service:a"]
    assert stored["model"] == "gpt-4o-mini" and stored["comment"] == "wrong capital"
    assert stored["correction"] == {
        "role": "assistant",
        "content": "The capital of Australia is Canberra.",
    }
    ok(fb.post({"trace_id": answer.trace_id, "metric": "rating", "value": 2}, key=app_key))
    ok(fb.post({"trace_id": answer.trace_id, "metric": "issue", "value": "wrong"}, key=app_key))
    wait_scores(fb, 3)

    # The trace detail carries its scores; reads follow the trace scope of each role.
    detail = fb.trace(answer.trace_id)
    assert sorted(s["metric"] for s in detail["scores"]) == ["issue", "rating", "thumbs"]
    assert len(fb.scores(fb.key("viewer", "a"))) == 3
    assert fb.scores(fb.key("team_admin", "b")) == []
    outside = fb.admin.as_(fb.key("viewer", "b")).call(
        "GET", "/admin/v1/feedback", params={"team": "team-a"}
    )
    refused(outside, 403, "outside_scope", "team_id")
    assert len(fb.scores(metric="thumbs", trace=answer.trace_id, source="api")) == 1
    assert fb.scores(metric="thumbs", source="reviewer") == []
    assert len(fb.scores(model="gpt-4o-mini", since="1h")) == 3
    refused(
        fb.admin.call("GET", "/admin/v1/feedback", params={"colour": "red"}),
        400,
        "unknown_parameter",
    )

    # Per-model satisfaction is one usage query.
    usage = fb.admin.ok("GET", "/admin/v1/usage", params={"group_by": "model", "since": "1h"})
    [row] = [r for r in usage["data"] if r["group"]["model"] == "gpt-4o-mini"]
    assert row["requests"] >= 1
    assert row["scores"]["thumbs"] == {
        "type": "boolean", "count": 1, "mean": 0.0, "min": None, "max": None, "labels": {}
    }  # fmt: skip
    assert row["scores"]["rating"]["mean"] == 2.0
    assert row["scores"]["issue"]["labels"] == {"wrong": 1}
    by_status = fb.admin.ok("GET", "/admin/v1/usage", params={"group_by": "status"})
    assert by_status["data"] and all("scores" not in r for r in by_status["data"])


def test_scope_and_bad_input_are_refused_and_nothing_is_stored(
    database_url: str, feedback_gateway: FbStarter
) -> None:
    fb = feedback_gateway(database_url)
    answer = fb.chat(fb.key("service", "a"))
    good = {"trace_id": answer.trace_id, "metric": "thumbs", "value": True}
    unknown = {**good, "trace_id": "f" * 32}
    for body, key, status, code, param in [
        (unknown, fb.key("service", "a"), 404, "trace_not_found", "trace_id"),
        (good, fb.key("service", "b"), 404, "trace_not_found", "trace_id"),
        (good, fb.key("team_admin", "b"), 404, "trace_not_found", "trace_id"),
        (good, fb.key("viewer", "a"), 403, "permission_denied", None),
        (good, None, 401, "missing_api_key", None),
        (good, "og-not-a-real-key", 401, None, None),
        ({**good, "metric": "stars"}, "", 400, "unknown_metric", "metric"),
        ({**good, "value": "yes"}, "", 400, "invalid_type", "value"),
        ({**good, "metric": "rating", "value": 9}, "", 400, "invalid_value", "value"),
        ({**good, "source": "reviewer"}, "", 403, "source_not_allowed", "source"),
        ({**good, "comment": "x" * 1_000_000}, "", 413, "comment_too_long", "comment"),
        ({"scores": [good] * 10_000}, "", 413, "too_many_scores", "scores"),
        ({"scores": [good, {**good, "value": 1}]}, "", 400, "invalid_type", "scores[1].value"),
        ({"scores": [good, unknown]}, "", 404, "trace_not_found", "scores[1].trace_id"),
    ]:
        resp = fb.post(body, key=key)
        assert resp.status_code == status, (body if len(str(body)) < 300 else code, resp.text)
        if code is not None:
            refused(resp, status, code, param)
    too_big = fb.post({"scores": [{**good, "comment": "y" * 9_000}] * 500})  # 4.5 MB body
    refused(too_big, 413, "payload_too_large")
    not_json = httpx.post(
        f"{fb.server.base}/v1/feedback",
        content=b"thumbs up",
        headers={"authorization": "Bearer mk-test-master-key"},
    )
    refused(not_json, 400, "invalid_json")
    # An accepted score proves the writer runs; none of the refused ones was stored.
    ok(fb.post({**good, "metric": "note", "value": "fine"}))
    assert [s["metric"] for s in wait_scores(fb, 1)] == ["note"]
    metrics = httpx.get(f"{fb.server.base}/metrics").text
    assert 'opsgate_feedback_refused_total{reason="not_found"} 4.0' in metrics
    assert 'opsgate_feedback_scores_total{metric="note",source="api"} 1.0' in metrics


def test_a_repeated_idempotency_key_is_stored_once(
    database_url: str, feedback_gateway: FbStarter
) -> None:
    fb = feedback_gateway(database_url)
    answer = fb.chat(fb.key("service", "a"))
    body = {"trace_id": answer.trace_id, "metric": "rating", "value": 4, "idempotency_key": "k1"}
    first = ok(fb.post(body, key=fb.key("service", "a")))
    again = ok(fb.post(body, key=fb.key("member", "a")))
    assert first[0]["id"] == again[0]["id"]
    in_batch = ok(fb.post({"scores": [body, body]}))
    assert {s["id"] for s in in_batch} == {first[0]["id"]}
    refused(fb.post({**body, "value": 5}), 409, "idempotency_key_reused", "idempotency_key")
    ok(fb.post({**body, "idempotency_key": "k2"}))
    stored = wait_scores(fb, 2)
    assert sorted(s["idempotency_key"] for s in stored) == ["k1", "k2"]


def test_session_metrics_score_a_conversation(
    database_url: str, feedback_gateway: FbStarter
) -> None:
    fb = feedback_gateway(database_url)
    key_a, key_b = fb.key("service", "a"), fb.key("service", "b")
    first = fb.chat(key_a, session="conv-1", user="ada")
    fb.chat(key_a, session="conv-1", user="ada")
    lone = fb.chat(key_a)
    fb.chat(key_b, session="conv-1")  # the same session id in another team: another session
    by_session = {"session_id": "conv-1", "metric": "resolved", "value": True}
    [ack] = ok(fb.post(by_session, key=key_a))
    assert ack["session_id"] == "conv-1" and ack["trace_id"] is None
    by_trace = {"trace_id": first.trace_id, "metric": "resolved", "value": False}
    [ack2] = ok(fb.post(by_trace, key=key_a))
    assert ack2["session_id"] == "conv-1" and ack2["trace_id"] is None
    ok(fb.post({**by_session, "value": True}, key=key_b))
    refused(fb.post({**by_session, "session_id": "conv-9"}, key=key_a), 404, "session_not_found")
    refused(
        fb.post({**by_trace, "trace_id": lone.trace_id}, key=key_a), 400, "no_session", "trace_id"
    )
    refused(
        fb.post({"session_id": "conv-1", "metric": "thumbs", "value": True}, key=key_a),
        400,
        "missing_required_parameter",
        "trace_id",
    )
    stored = wait_scores(fb, 3, session="conv-1")
    assert {(s["team_id"], s["end_user"]) for s in stored} == {("team-a", "ada"), ("team-b", None)}
    detail = fb.trace(first.trace_id)
    assert detail["scores"] == []
    assert sorted(s["value"] for s in detail["session_scores"]) == [False, True]


def test_a_score_for_a_trace_still_in_the_writer_queue_is_accepted(
    database_url: str, feedback_gateway: FbStarter
) -> None:
    fb = feedback_gateway(database_url, traces={"flush_interval": 3.0, "batch_size": 10_000})
    answer = fb.chat(fb.key("service", "a"))
    ok(fb.post({"trace_id": answer.trace_id, "metric": "thumbs", "value": True}))
    [stored] = wait_scores(fb, 1)
    assert stored["team_id"] == "team-a"  # the owners came from memory, not the database
    fb.trace(answer.trace_id)
