"""Drift through the real gateway (SQLite and PostgreSQL): shifted traffic changes a monitor's
state, the alert reaches a loopback webhook, a proposal is created and accepted (a dataset),
and bad input gets its clear answer."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from tests.drift.conftest import DriftGw, get, poll, questions
from tests.fixtures._steps import Reply
from tests.fixtures.needs import import_or_need

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
database_url_param = pytest.mark.parametrize(
    "database_url", ["sqlite", "postgresql"], indirect=True
)
HOUR = 3600.0


def monitor(name: str, kind: str, start: float, end: float, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "window": HOUR,
        "reference": {"type": "fixed", "start": start, "end": end},
        "min_samples": 30,
        **more,
    }


def reference_then_current(gw: DriftGw, ref: list[str], cur: list[str]) -> tuple[float, float]:
    """Send `ref`, move it two hours back, send `cur`; the reference range."""
    t0 = time.time()
    for q in ref:
        gw.chat(q)
    gw.wait_samples(len(ref))
    gw.backdate(2 * HOUR)
    for q in cur:
        gw.chat(q)
    gw.wait_samples(len(ref) + len(cur))
    return t0 - 2 * HOUR - 60, time.time() - 2 * HOUR + 1


@database_url_param
def test_a_topic_shift_enters_drift_alerts_and_proposes_a_dataset(
    database_url: str, drift_gateway: Any
) -> None:
    import_or_need("sentence_transformers", "the local MiniLM embedder (the embed extra)")
    gw: DriftGw = drift_gateway(database_url, embedder={"type": "local"})
    rng = random.Random(7)
    quora, medical = questions("quora_question_pairs"), questions("medical_question_pairs")
    rng.shuffle(quora)
    rng.shuffle(medical)
    start, end = reference_then_current(gw, quora[:60], quora[60:90] + medical[:30])
    created = gw.admin.call(
        "POST", "/admin/v1/drift/monitors", monitor("topics", "input", start, end)
    )
    assert created.status_code == 201, created.text
    same = gw.admin.call(
        "POST",
        "/admin/v1/drift/monitors",
        monitor("same", "input", start, end, scope={"model": "gpt-4o-mini"}),
    )
    assert same.status_code == 201

    ran = gw.admin.ok("POST", "/admin/v1/drift/run", {"monitors": ["topics"]})["data"][0]
    assert ran["state"] == "drift", ran
    assert ran["p_value"] <= 0.01 and ran["n_ref"] == 60 and ran["n_cur"] == 60
    grew = [c for c in ran["detail"]["clusters"] if c["side"] == "current"]
    assert grew and max(c["delta"] for c in grew) >= 0.1

    alert = gw.webhook.wait("drift.detected")
    assert alert["labels"] == {"monitor": "topics", "kind": "input"}
    proposals = get(gw.admin, "/admin/v1/drift/proposals", status="open")["data"]
    assert [p["monitor"] for p in proposals] == ["topics"]
    proposal = proposals[0]
    assert proposal["id"] == alert["data"]["proposal_id"]
    assert set(proposal["detail"]["trace_ids"]) == set(gw.sent[60:])

    examples = get(gw.admin, f"/admin/v1/drift/results/{ran['id']}/examples")["data"]
    shown = [t for c in examples for t in c["texts"]]
    assert shown and all(t in quora[:90] + medical[:30] for t in shown)

    accepted = gw.admin.ok("POST", f"/admin/v1/drift/proposals/{proposal['id']}/accept")
    assert accepted["status"] == "accepted" and accepted["decided_by"] == "master"
    dataset = gw.admin.ok("GET", f"/admin/v1/datasets/{accepted['outcome']['dataset_id']}")
    assert dataset["rows"] == 60
    again = gw.admin.call("POST", f"/admin/v1/drift/proposals/{proposal['id']}/dismiss")
    assert again.status_code == 409
    audit = get(gw.admin, "/admin/v1/audit", action="drift.proposal.accept")["data"]
    assert [a["target"] for a in audit] == [f"drift_proposal:{proposal['id']}"]

    listed = {m["name"]: m for m in get(gw.admin, "/admin/v1/drift/monitors")["data"]}
    assert listed["topics"]["state"] == "drift"
    metrics = gw.admin.call("GET", "/metrics").text
    assert 'opsgate_drift_state{monitor="topics"} 2.0' in metrics


@database_url_param
def test_refusals_and_longer_answers_show_in_the_output_statistics(
    database_url: str, drift_gateway: Any
) -> None:
    gw: DriftGw = drift_gateway(database_url)
    quora = questions("quora_question_pairs")
    t0 = time.time()
    for q in quora[:80]:
        gw.chat(q)
    gw.wait_samples(80)
    gw.backdate(2 * HOUR)
    answer = "Here is a longer answer that goes on for a while about the question. " * 2
    for i, q in enumerate(quora[80:160]):
        refusal = i % 5 == 0  # 20% refusals, and the other answers longer
        gw.upstream.script(Reply("I'm sorry, but I can't help with that." if refusal else answer))
        gw.chat(q)
    gw.wait_samples(160)
    start, end = t0 - 2 * HOUR - 60, time.time() - 2 * HOUR + 1
    for kind, name in (("stats", "answers"), ("operational", "ops")):
        resp = gw.admin.call("POST", "/admin/v1/drift/monitors", monitor(name, kind, start, end))
        assert resp.status_code == 201, resp.text
    results = {r["monitor"]: r for r in gw.admin.ok("POST", "/admin/v1/drift/run", {})["data"]}
    stats = results["answers"]
    assert stats["state"] == "drift", stats
    tests = stats["detail"]["tests"]
    assert tests["refusal"]["p_value"] < 0.01 and tests["answer_length"]["p_value"] < 0.01
    assert tests["refusal"]["cur_shares"]["True"] == pytest.approx(0.2)
    assert results["ops"]["state"] in ("ok", "warning", "drift")
    assert results["ops"]["n_ref"] == 80


@database_url_param
def test_a_drop_in_thumbs_up_enters_drift_through_the_cusum(
    database_url: str, drift_gateway: Any
) -> None:
    metrics = {"metrics": {"thumbs": {"type": "boolean"}}, "flush_interval": 0.05}
    gw: DriftGw = drift_gateway(database_url, feedback=metrics)
    rng = random.Random(5)

    def rated(n: int, rate: float) -> None:
        for i in range(n):
            trace_id = gw.chat(f"question {i}")
            score = {"trace_id": trace_id, "metric": "thumbs", "value": rng.random() < rate}
            assert gw.admin.call("POST", "/v1/feedback", score).status_code < 300

    def scores() -> int:
        return int(gw.sql("SELECT count(*) FROM scores")[0][0])

    t0 = time.time()
    rated(120, 0.9)
    assert poll(lambda: scores() == 120)
    gw.backdate(2 * HOUR)
    rated(80, 0.4)
    assert poll(lambda: scores() == 200)
    spec = monitor(
        "thumbs", "quality", t0 - 2 * HOUR - 60, time.time() - 2 * HOUR + 1, metric="thumbs"
    )
    assert gw.admin.call("POST", "/admin/v1/drift/monitors", spec).status_code == 201
    ran = gw.admin.ok("POST", "/admin/v1/drift/run", {"monitors": ["thumbs"]})["data"][0]
    assert ran["state"] == "drift", ran
    assert ran["statistic"] > ran["threshold"] and ran["detail"]["alarm_at"] is not None
    assert ran["detail"]["cur_mean"] < ran["detail"]["ref_mean"]
    assert (ran["n_ref"], ran["n_cur"]) == (120, 80)
    alert = gw.webhook.wait("drift.detected")
    assert alert["labels"]["kind"] == "quality"


@database_url_param
def test_bad_input(database_url: str, drift_gateway: Any) -> None:
    gw: DriftGw = drift_gateway(database_url, embedder={"type": "gateway"})
    now = time.time()
    empty = gw.admin.call(
        "POST",
        "/admin/v1/drift/monitors",
        monitor("old", "stats", now - 90 * 86400, now - 89 * 86400),
    )
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_reference"
    short = gw.admin.call(
        "POST", "/admin/v1/drift/monitors", {"name": "x", "kind": "input", "window": 5}
    )
    assert short.status_code == 422 or short.status_code == 400
    for q in questions("quora_question_pairs")[:5]:
        assert gw.chat(q)  # the gateway answers although the drift embedder cannot be built
    gw.wait_samples(5)
    trailing = {"name": "quiet", "kind": "stats", "window": 60, "scope": {"model": "nobody"}}
    assert gw.admin.call("POST", "/admin/v1/drift/monitors", trailing).status_code == 201
    broken = {"name": "broken", "kind": "input", "window": 60}
    assert gw.admin.call("POST", "/admin/v1/drift/monitors", broken).status_code == 201
    results = {r["monitor"]: r for r in gw.admin.ok("POST", "/admin/v1/drift/run", {})["data"]}
    assert results["quiet"]["state"] == "insufficient_data"
    assert "0 reference and 0 current" in results["quiet"]["reason"]
    assert results["broken"]["state"] == "error"
    assert "embedder unavailable" in results["broken"]["reason"]
    assert gw.webhook.received == []  # neither is a false alarm
    taken = gw.admin.call("POST", "/admin/v1/drift/monitors", trailing)
    assert taken.status_code == 409
    assert gw.admin.call("GET", "/admin/v1/drift/monitors/nope").status_code == 404
    unknown = gw.admin.call("POST", "/admin/v1/drift/run", {"monitors": ["nope"]})
    assert unknown.status_code == 404


@database_url_param
def test_erasure_removes_the_end_users_drift_samples(database_url: str, drift_gateway: Any) -> None:
    gw: DriftGw = drift_gateway(database_url)
    gw.chat("How do I reset my password?", user="alice")
    gw.chat("How do I reset my password?", user="bob")
    gw.wait_samples(2)
    assert gw.sql("SELECT count(*) FROM drift_samples WHERE embedding IS NOT NULL")[0][0] == 2
    resp = gw.admin.call("DELETE", "/admin/v1/end-users/alice")
    assert resp.status_code == 200, resp.text
    assert resp.json()["counts"]["drift_samples"] == 1
    rows = gw.sql("SELECT end_user FROM drift_samples")
    assert [r[0] for r in rows] == ["bob"]
