"""The Review and Datasets dashboard pages over HTTP (as a browser's forms post them): who sees
which page, CSRF, labels and their errors, prompts shown as text, scores on the trace page, the
satisfaction panel on the Overview, building a dataset from a form and downloading an export."""

from __future__ import annotations

import json

import pytest

from tests.feedback.conftest import FbStarter
from tests.feedback.formats import parse_jsonl
from tests.feedback.loop import expect, start_loop
from tests.fixtures.upstream import FakeUpstream
from tests.ui.helpers import open_clients, text_of

pytestmark = pytest.mark.integration
XSS = "Is <script>window.__x=1</script> safe?"


def test_review_and_dataset_pages(
    db_url: str,
    feedback_gateway: FbStarter,
    upstreams: dict[str, FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = start_loop(db_url, feedback_gateway, upstreams, monkeypatch)
    app = loop.key("service", "a")
    trace_id = loop.ask(XSS, "No <b>bold</b> claims.", key=app)
    loop.wait_traces([trace_id])
    loop.score(trace_id, "thumbs", False, key=app)
    loop.wait_scores(1)
    lead_key = loop.key("team_admin", "a")
    rule = {"since": "1h", "scores": [{"metric": "thumbs", "value": False}]}
    queue = expect(
        loop.as_(lead_key).call("POST", "/admin/v1/review/queues", {"name": "down", "rule": rule}),
        201,
    )["id"]

    for clients in open_clients(loop.base):
        viewer, _ = clients.logged_in(loop.key("viewer", "a"))
        assert viewer.get("/ui/review").status_code == 403
        assert viewer.get("/ui/datasets").status_code == 403
        member, _ = clients.logged_in(loop.key("member", "a"))
        assert "No review queue is open to you" in text_of(member.get("/ui/review"))
        assert member.get(f"/ui/review/{queue}").status_code == 404
        assert member.get("/ui/datasets").status_code == 403

        lead, csrf = clients.logged_in(lead_key)
        listing = text_of(lead.get("/ui/review"))
        assert "down" in listing and "0 / 1" in listing
        assert lead.post(f"/ui/review/{queue}/next").status_code == 403  # no CSRF token
        claimed = lead.post(f"/ui/review/{queue}/next", data={"csrf_token": csrf})
        assert claimed.status_code == 303
        item_url = claimed.headers["location"]
        assert item_url.endswith(f"/ui/review/{queue}/items/{trace_id}")
        item = lead.get(item_url)
        assert item.status_code == 200
        assert "<script>window.__x=1</script>" not in item.text  # shown as text, not run
        assert "&lt;script&gt;window.__x=1&lt;/script&gt;" in item.text
        assert "No &lt;b&gt;bold&lt;/b&gt; claims." in item.text
        empty = lead.post(f"{item_url}/label", data={"csrf_token": csrf})
        assert empty.status_code == 400 and "Label at least one metric" in text_of(empty)
        bad = lead.post(f"{item_url}/label", data={"csrf_token": csrf, "m.rating": "lots"})
        assert bad.status_code == 400 and "rating: enter a number" in text_of(bad)
        out_of_range = lead.post(f"{item_url}/label", data={"csrf_token": csrf, "m.rating": "9"})
        assert out_of_range.status_code == 400 and "between 1 and 5" in text_of(out_of_range)
        form = {"csrf_token": csrf, "m.thumbs": "false", "correction": "It is safe."}
        labelled = lead.post(f"{item_url}/label", data=form)
        assert labelled.status_code == 303 and labelled.headers["location"].endswith("?empty=1")
        assert "Nothing left for you" in text_of(lead.get(labelled.headers["location"]))
        audit = expect(
            loop.as_().call("GET", "/admin/v1/audit", params={"action": "review.label"}), 200
        )
        # Every attempt is audited with its outcome, the refused ones too.
        assert sorted(e["detail"]["status"] for e in audit["data"]) == [303, 400, 400, 400]

        loop.wait_scores(2)
        trace = text_of(lead.get(f"/ui/traces/{trace_id}"))
        assert "reviewer" in trace and "It is safe." in trace
        satisfaction = text_of(lead.get("/ui/overview/satisfaction", params={"range": "1h"}))
        assert "gpt-4o-mini" in satisfaction and "0.0%" in satisfaction

        bad_where = lead.post(
            "/ui/datasets", data={"csrf_token": csrf, "name": "x", "where": "thumbs"}
        )
        assert bad_where.status_code == 400 and "expected metric=value" in text_of(bad_where)
        made = lead.post(
            "/ui/datasets", data={"csrf_token": csrf, "name": "reviewed", "from_queue": queue}
        )
        assert made.status_code == 303
        page = text_of(lead.get(made.headers["location"]))
        assert "Dataset reviewed created: version 1, 1 rows." in page
        dataset_id = made.headers["location"].split("/")[-1].split("?")[0]
        download = lead.get(f"/ui/datasets/{dataset_id}/export", params={"format": "eval"})
        assert download.status_code == 200
        assert "reviewed-v1-eval.jsonl" in download.headers["content-disposition"]
        [line] = parse_jsonl(download.content, "eval")
        assert line["reference"] == "It is safe." and line["input"][0]["content"] == XSS
        refused = lead.get(f"/ui/datasets/{dataset_id}/export", params={"format": "csv"})
        assert refused.status_code == 400
        assert json.loads(json.dumps(line))["trace_id"] == trace_id
