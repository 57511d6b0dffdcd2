"""Review queues over HTTP on a real gateway (SQLite and PostgreSQL): a rule fills a queue from
scored traffic, reviewers claim, label, skip and undo, labels land in the score store as
`reviewer` scores, and every role sees exactly the queues it may review."""

from __future__ import annotations

from typing import Any

import pytest

from tests.feedback.loop import Loop, expect, loop  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
Q = "/admin/v1/review/queues"


def _traffic(loop: Loop) -> dict[str, str]:  # noqa: F811
    app_a, app_b = loop.key("service", "a"), loop.key("service", "b")
    ids = {
        "down1": loop.ask("What is the capital of Australia?", "Sydney.", key=app_a),
        "up": loop.ask("What is 2 + 2?", "4.", key=app_a),
        "down2": loop.ask("Spell 'necessary'.", "Neccessary.", key=app_a),
        "other_team": loop.ask("Hello?", "Hi.", key=app_b),
    }
    loop.wait_traces(list(ids.values()))
    loop.score(ids["down1"], "thumbs", False, key=app_a)
    loop.score(ids["up"], "thumbs", True, key=app_a)
    loop.score(ids["down2"], "thumbs", False, key=app_a)
    loop.score(ids["other_team"], "thumbs", False, key=app_b)
    loop.wait_scores(4)
    return ids


def test_a_thumbs_down_queue_is_reviewed_into_reviewer_scores(loop: Loop) -> None:  # noqa: F811
    ids = _traffic(loop)
    lead = loop.as_(loop.key("team_admin", "a"))
    member = loop.as_(loop.key("member", "a"))
    rule = {"since": "1h", "scores": [{"metric": "thumbs", "value": False}]}
    made = expect(lead.call("POST", Q, {"name": "thumbs-down", "rule": rule}), 201)
    assert made["team_id"] == "team-a" and made["rule"]["team_id"] == "team-a"
    assert made["progress"]["total"] == 2  # team b's thumbs-down is not team a's to review
    queue = made["id"]

    # A member reviews only once the queue names them; a viewer never.
    expect(member.call("GET", f"{Q}/{queue}"), 404, "queue_not_found")
    assert expect(member.call("GET", Q), 200)["data"] == []
    expect(loop.as_(loop.key("viewer", "a")).call("GET", Q), 403, "permission_denied")
    expect(member.call("PATCH", f"{Q}/{queue}", {"reviewers": ["user-a"]}), 403)
    expect(lead.call("PATCH", f"{Q}/{queue}", {"reviewers": ["user-a"]}), 200)
    assert [q["id"] for q in expect(member.call("GET", Q), 200)["data"]] == [queue]
    expect(loop.as_(loop.key("team_admin", "b")).call("GET", f"{Q}/{queue}"), 404)
    expect(loop.as_(loop.key("team_admin", "b")).call("GET", f"{Q}/thumbs-down"), 404)

    # Claims: the member gets the oldest and keeps it; the lead gets the other one.
    first = expect(member.call("POST", f"{Q}/{queue}/next"), 200)
    assert first["trace_id"] == ids["down1"] and first["assigned_to"] == "user:user-a"
    assert expect(member.call("POST", f"{Q}/thumbs-down/next"), 200)["trace_id"] == ids["down1"]
    second = expect(lead.call("POST", f"{Q}/{queue}/next"), 200)
    assert second["trace_id"] == ids["down2"]
    assert [s["metric"] for s in second["scores"]] == ["thumbs"]

    # Bad labels are refused with the field, and nothing is stored or marked done.
    item = f"{Q}/{queue}/items/{ids['down1']}"
    expect(member.call("POST", item + "/label", {"scores": {"stars": 3}}), 400, "unknown_metric")
    bad = member.call("POST", item + "/label", {"scores": {"thumbs": "no"}})
    assert expect(bad, 400, "invalid_type")["error"]["param"] == "scores.thumbs.value"
    expect(member.call("POST", item + "/label", {"scores": {}}), 422, "invalid_body")
    taken = f"{Q}/{queue}/items/{ids['down2']}/label"
    expect(member.call("POST", taken, {"scores": {"thumbs": False}}), 409, "item_taken")

    label = {
        "scores": {"thumbs": False, "issue": "wrong"},
        "comment": "Sydney is not the capital",
        "correction": "The capital of Australia is Canberra.",
    }
    written = expect(member.call("POST", item + "/label", label), 201)["scores"]
    assert {s["metric"] for s in written} == {"thumbs", "issue"}
    stored = loop.wait_scores(2, source="reviewer")
    thumbs = next(s for s in stored if s["metric"] == "thumbs")
    assert thumbs["author"] == loop.key_id("member", "a") and thumbs["value"] is False
    assert thumbs["correction"] == {
        "role": "assistant",
        "content": "The capital of Australia is Canberra.",
    }
    assert thumbs["comment"] == "Sydney is not the capital"
    progress = expect(lead.call("GET", f"{Q}/{queue}"), 200)["progress"]
    assert progress["done"] == 1 and progress["pending"] == 1
    assert progress["labelled_by"] == {"user:user-a": 1} and progress["in_progress"] == 1

    # Undo: the label's scores leave the store and the item is the member's again.
    undone = expect(member.call("POST", f"{Q}/{queue}/undo"), 200)
    assert undone["undone"] == "label" and undone["assigned_to_you"] is True
    assert undone["state"] == "pending" and undone["trace_id"] == ids["down1"]
    assert loop.fb.scores(source="reviewer") == []
    expect(member.call("POST", f"{Q}/{queue}/undo"), 409, "nothing_to_undo")
    expect(member.call("POST", item + "/label", {"scores": {"thumbs": False}}), 201)

    # Skip: the lead puts theirs back; it is never offered to them again, but to others.
    expect(lead.call("POST", f"{Q}/{queue}/items/{ids['down2']}/skip"), 200)
    assert expect(lead.call("POST", f"{Q}/{queue}/next"), 200)["item"] is None
    assert expect(member.call("POST", f"{Q}/{queue}/next"), 200)["trace_id"] == ids["down2"]
    expect(member.call("POST", f"{Q}/{queue}/items/{ids['down2']}/label", label), 201)
    progress = expect(lead.call("GET", f"{Q}/{queue}"), 200)["progress"]
    assert progress == {
        "total": 2,
        "done": 2,
        "pending": 0,
        "in_progress": 0,
        "labelled_by": {"user:user-a": 2},
        "skipped_by": {f"key:{loop.key_id('team_admin', 'a')}": 1},
    }
    assert len(loop.wait_scores(3, source="reviewer")) == 3
    done = expect(lead.call("GET", f"{Q}/{queue}/items", params={"state": "done"}), 200)
    assert [i["trace_id"] for i in done["data"]] == [ids["down1"], ids["down2"]]


def test_queue_rules_guard_flags_samples_and_bad_rules(loop: Loop) -> None:  # noqa: F811
    ids = [loop.ask(f"question {n}", f"answer {n}") for n in range(40)]
    loop.wait_traces(ids)
    admin = loop.as_()
    everything = expect(admin.call("POST", Q, {"name": "all", "rule": {"since": "1h"}}), 201)
    assert everything["progress"]["total"] == 40 and everything["team_id"] is None
    half = {"name": "half", "rule": {"since": "1h"}, "sample": 0.5}
    sampled = expect(admin.call("POST", Q, half), 201)["progress"]["total"]
    assert 5 < sampled < 35  # a hash of queue and trace ids: about half
    again = expect(admin.call("POST", f"{Q}/half/fill"), 200)
    assert again["added"] == 0 and again["progress"]["total"] == sampled  # stable sample
    flagged = expect(
        admin.call("POST", Q, {"name": "guard", "rule": {"since": "1h", "flagged": True}}), 201
    )
    assert flagged["progress"]["total"] == 0  # no guard policy flagged anything here

    # New traffic after creation is picked up by the next fill.
    late = loop.ask("one more", "ok")
    loop.wait_traces([late])
    assert expect(admin.call("POST", f"{Q}/all/fill"), 200)["added"] == 1

    bad_rules: list[tuple[dict[str, Any], int, str]] = [
        ({"scores": [{"metric": "nope", "value": True}]}, 400, "unknown_metric"),
        ({"scores": [{"metric": "thumbs", "op": "lt", "value": True}]}, 400, "invalid_condition"),
        ({"scores": [{"metric": "rating", "value": "high"}]}, 400, "invalid_condition"),
        ({"since": "yesterday"}, 400, "invalid_time"),
        ({"surprise": 1}, 422, "invalid_body"),
    ]
    for n, (rule, status, code) in enumerate(bad_rules):
        expect(admin.call("POST", Q, {"name": f"bad{n}", "rule": rule}), status, code)
    expect(admin.call("POST", Q, {"name": "all"}), 409, "queue_exists")
    expect(admin.call("POST", Q, {"name": "x", "metrics": ["nope"]}), 400, "unknown_metric")
    lead_b = loop.as_(loop.key("team_admin", "b"))
    outside = lead_b.call("POST", Q, {"name": "x", "team_id": "team-a"})
    expect(outside, 403, "outside_scope")
    expect(loop.as_(loop.key("member", "a")).call("POST", Q, {"name": "x"}), 403)
