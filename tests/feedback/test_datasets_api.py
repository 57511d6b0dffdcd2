"""Datasets over HTTP on a real gateway (SQLite and PostgreSQL): built from scored traffic and
from a review queue, versioned, exported in each format (every line checked against its
format), with PII redacted unless an audited opt-out, duplicates dropped, counts reported;
uploaded as JSONL; erased with their end user; refused clearly when bodies are not stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.access.helpers import MASTER, Client
from tests.feedback.conftest import FbStarter
from tests.feedback.formats import parse_jsonl
from tests.feedback.loop import Loop, expect, loop  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
D = "/admin/v1/datasets"
EMAIL = "ada.lovelace@example.com"


def _export(client: Client, ref: str, fmt: str, **params: str) -> tuple[list[Any], Any]:
    resp = client.call("GET", f"{D}/{ref}/export", params={"format": fmt, **params})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/jsonl")
    lines = parse_jsonl(resp.content, fmt)
    report = expect(
        client.call("GET", f"{D}/{ref}/exports/{resp.headers['x-opsgate-export-id']}"), 200
    )
    assert report["complete"] and report["rows"] == len(lines)
    return lines, report


def _traffic(loop: Loop) -> dict[str, str]:  # noqa: F811
    app = loop.key("service", "a")
    ids = {
        "pii": loop.ask(
            f"My email is {EMAIL}, reset my password",
            f"Sent a link to {EMAIL}.",
            key=app,
            user="ada",
        ),
        "four": loop.ask("What is 2 + 2?", "4", key=app, user="bob"),
        "sydney": loop.ask("Capital of Australia?", "Sydney", key=app, user="bob"),
        "five": loop.ask("What is 2 + 2?", "5", key=app, user="cy"),
        "unscored": loop.ask("Tell me a joke", "No.", key=app),
        "team_b": loop.ask("What is 3 + 3?", "6", key=loop.key("service", "b")),
    }
    loop.wait_traces(list(ids.values()))
    loop.score(ids["pii"], "thumbs", True, key=app)
    loop.score(ids["four"], "thumbs", True, key=app)
    loop.score(ids["sydney"], "thumbs", False, key=app, correction="Canberra.")
    loop.score(ids["five"], "thumbs", False, key=app)
    loop.score(ids["team_b"], "thumbs", True, key=loop.key("service", "b"))
    loop.wait_scores(5)
    return ids


def test_build_version_and_export_a_dataset_from_scored_traffic(loop: Loop) -> None:  # noqa: F811
    ids = _traffic(loop)
    lead = loop.as_(loop.key("team_admin", "a"))
    body = {
        "name": "support-good",
        "from_traces": [
            {
                "since": "1h",
                "model": "gpt-4o-mini",
                "scores": [{"metric": "thumbs", "value": True}],
            },
            {"corrected": True},
        ],
    }
    made = expect(lead.call("POST", D, body), 201)
    assert made["version"] == 1 and made["added"] == 3  # team b's thumbs-up is not team a's
    assert made["dataset"]["team_id"] == "team-a"
    rows = expect(lead.call("GET", f"{D}/support-good/rows"), 200)["data"]
    assert sorted(r["source_trace_id"] for r in rows) == sorted(
        [ids["pii"], ids["four"], ids["sydney"]]
    )
    assert "messages" not in rows[0]  # content only on request, audited
    sources = {"from_traces": body["from_traces"]}
    again = expect(lead.call("POST", f"{D}/support-good/rows", sources), 200)
    assert again["added"] == 0 and again["version"] == 1 and again["skipped"]["already_in"] == 3
    added = expect(lead.call("POST", f"{D}/support-good/rows", {"trace_ids": [ids["five"]]}), 201)
    assert added["version"] == 2

    chat, report = _export(lead, "support-good", "openai-chat")
    assert len(chat) == 4 and report["tokens"] > 0 and report["redactions"] >= 2
    text = str(chat)
    assert EMAIL not in text and "<EMAIL_1>" in text
    targets = {line["messages"][0]["content"]: line["messages"][-1]["content"] for line in chat}
    assert targets["Capital of Australia?"] == "Canberra."  # the correction, not the answer
    old, _ = _export(lead, "support-good", "openai-chat", version="1")
    assert len(old) == 3

    pairs, _ = _export(lead, "support-good", "preference", metric="thumbs")
    by_prompt = {p["prompt"][0]["content"]: p for p in pairs}
    assert by_prompt["Capital of Australia?"]["chosen"][0]["content"] == "Canberra."
    assert by_prompt["Capital of Australia?"]["rejected"][0]["content"] == "Sydney"
    assert by_prompt["What is 2 + 2?"]["chosen"][0]["content"] == "4"
    assert by_prompt["What is 2 + 2?"]["rejected"][0]["content"] == "5"
    evals, _ = _export(lead, "support-good", "eval")
    assert {e["reference"] for e in evals} >= {"Canberra.", "4", "5"}
    assert all(e["trace_id"] in ids.values() for e in evals)

    # The opt-out: plain text for a caller that may change datasets, in the audit log.
    plain, report = _export(lead, "support-good", "openai-chat", redact="false")
    assert EMAIL in str(plain) and report["redacted"] is False
    audit = expect(
        loop.as_().call("GET", "/admin/v1/audit", params={"action": "datasets.export"}), 200
    )
    assert [e["detail"]["redact"] for e in audit["data"]].count(False) == 1

    # An exact duplicate (after redaction) is written once.
    duplicate = {"messages": [{"role": "user", "content": "What is 2 + 2?"}], "output": "4"}
    expect(lead.call("POST", f"{D}/support-good/rows", {"rows": [duplicate]}), 201)
    chat, report = _export(lead, "support-good", "openai-chat")
    assert len(chat) == 4 and report["duplicates_dropped"] == 1

    # Versions, removal, who may see what.
    removed = expect(
        lead.call("POST", f"{D}/support-good/rows/remove", {"trace_ids": [ids["five"]]}), 200
    )
    assert removed["removed"] == 1 and removed["version"] == 4
    shown = expect(lead.call("GET", f"{D}/support-good"), 200)
    assert [v["change"] for v in shown["versions"]] == ["create", "add", "add", "remove"]
    assert shown["rows"] == 4
    expect(loop.as_(loop.key("team_admin", "b")).call("GET", f"{D}/support-good"), 404)
    expect(loop.as_(loop.key("team_admin", "b")).call("GET", f"{D}/{made['dataset']['id']}"), 404)
    expect(loop.as_(loop.key("viewer", "a")).call("GET", D), 403, "permission_denied")
    expect(loop.as_(loop.key("member", "a")).call("GET", D), 403, "permission_denied")
    outside = lead.call("POST", f"{D}/support-good/rows", {"from_traces": [{"team_id": "team-b"}]})
    expect(outside, 403, "outside_scope")
    unknown = lead.call("POST", f"{D}/support-good/rows", {"trace_ids": [ids["team_b"]]})
    expect(unknown, 404, "trace_not_found")
    bad = lead.call("GET", f"{D}/support-good/export", params={"format": "csv"})
    expect(bad, 400, "invalid_format")
    expect(lead.call("GET", f"{D}/support-good/export", params={"version": "9"}), 404)

    # Erasure: ada's row leaves every version of the dataset.
    expect(loop.as_().call("DELETE", "/admin/v1/end-users/ada"), 200)
    for version in ("1", "4"):
        lines, _ = _export(lead, "support-good", "openai-chat", redact="false", version=version)
        assert "reset my password" not in str(lines)


def test_a_dataset_from_a_review_queue_and_from_jsonl(loop: Loop) -> None:  # noqa: F811
    ids = _traffic(loop)
    lead = loop.as_(loop.key("team_admin", "a"))
    rule = {"since": "1h", "scores": [{"metric": "thumbs", "value": False}]}
    queue = expect(
        lead.call("POST", "/admin/v1/review/queues", {"name": "down", "rule": rule}), 201
    )
    assert queue["progress"]["total"] == 2
    label = {"scores": {"thumbs": False}, "correction": "2 + 2 = 4."}
    expect(lead.call("POST", f"/admin/v1/review/queues/down/items/{ids['five']}/label", label), 201)
    loop.wait_scores(6)
    made = expect(lead.call("POST", D, {"name": "reviewed", "from_queue": "down"}), 201)
    assert made["added"] == 1  # only what reviewers finished
    [line], _ = _export(lead, "reviewed", "openai-chat")
    assert line["messages"][-1] == {"role": "assistant", "content": "2 + 2 = 4."}
    expect(
        loop.as_(loop.key("team_admin", "b")).call("POST", D, {"name": "x", "from_queue": "down"}),
        404,
    )

    # JSONL upload: all lines or none.
    user, answer = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}
    pair = {
        "prompt": [{"role": "user", "content": "2+2?"}],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "5"}],
        "end_user": "zed",
    }
    evaluation = {"input": [{"role": "user", "content": "capital?"}], "reference": "Canberra"}
    lines = [{"messages": [user, answer]}, None, pair, evaluation]
    good = b"\n".join(b"" if line is None else json.dumps(line).encode() for line in lines)
    expect(lead.call("POST", D, {"name": "uploaded"}), 201)
    imported = expect(lead.call("POST", f"{D}/uploaded/import", content=good), 201)
    assert imported["added"] == 3 and imported["version"] == 2
    bad = good + b'\n{"messages": [{"role": "robot", "content": "x"}]}\n'
    refused = expect(lead.call("POST", f"{D}/uploaded/import", content=bad), 400, "invalid_row")
    assert refused["error"]["param"] == "line 5: messages[0].role"
    expect(lead.call("POST", f"{D}/uploaded/import", content=b"not json\n"), 400, "invalid_jsonl")
    expect(lead.call("POST", f"{D}/uploaded/import", content=b"\n\n"), 400, "empty_upload")
    shown = expect(lead.call("GET", f"{D}/uploaded"), 200)
    assert shown["version"] == 2 and shown["rows"] == 3  # the refused uploads changed nothing
    chat, _ = _export(lead, "uploaded", "openai-chat")
    assert [c["messages"][-1]["content"] for c in chat] == ["hello", "4", "Canberra"]
    content = expect(
        lead.call("GET", f"{D}/uploaded/rows", params={"include_content": "true"}), 200
    )["data"]
    assert content[1]["reference"] == {"role": "assistant", "content": "4"}
    expect(loop.as_().call("DELETE", "/admin/v1/end-users/zed"), 200)
    assert expect(lead.call("GET", f"{D}/uploaded"), 200)["rows"] == 2


def test_without_stored_bodies_datasets_from_traffic_are_refused(
    database_url: str, feedback_gateway: FbStarter
) -> None:
    fb = feedback_gateway(database_url)  # traces.store_bodies: off (the default)
    admin = fb.admin.as_(MASTER)
    refused = admin.call("POST", D, {"name": "x", "from_traces": [{"since": "1h"}]})
    message = expect(refused, 409, "bodies_not_stored")["error"]["message"]
    assert "traces.store_bodies" in message
    assert admin.call("GET", f"{D}/x").status_code == 404  # nothing half-made is left
