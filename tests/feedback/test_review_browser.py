"""End to end in headless Chromium (Debian's chromium through Playwright): a reviewer logs in,
labels the three traces of a thumbs-down queue (one with a correction), builds a dataset from
the queue and downloads its export, which holds the correction as the answer to learn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.feedback.conftest import FbStarter
from tests.feedback.formats import parse_jsonl
from tests.feedback.loop import Loop, expect, start_loop
from tests.fixtures.upstream import FakeUpstream
from tests.ui.test_browser import _login, _page, browser, shot  # noqa: F401 (fixture)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration
QUESTIONS = {
    "Capital of Australia?": "Sydney.",
    "What is 7 * 8?": "54.",
    "Who wrote Hamlet?": "Marlowe.",
}


@pytest.fixture
def reviewing(
    db_url: str,
    feedback_gateway: FbStarter,
    upstreams: dict[str, FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
) -> Loop:
    loop = start_loop(db_url, feedback_gateway, upstreams, monkeypatch)
    app = loop.key("service", "a")
    ids = [loop.ask(q, a, key=app) for q, a in QUESTIONS.items()]
    happy = loop.ask("Say hi", "Hi!", key=app)
    loop.wait_traces([*ids, happy])
    for trace_id in ids:
        loop.score(trace_id, "thumbs", False, key=app)
    loop.score(happy, "thumbs", True, key=app)
    loop.wait_scores(4)
    rule = {"since": "1h", "scores": [{"metric": "thumbs", "value": False}]}
    body = {"name": "thumbs-down", "rule": rule, "metrics": ["thumbs", "issue"]}
    made = expect(
        loop.as_(loop.key("team_admin", "a")).call("POST", "/admin/v1/review/queues", body), 201
    )
    assert made["progress"]["total"] == 3
    return loop


@pytest.fixture
def page(browser: Browser, reviewing: Loop) -> Iterator[Page]:  # noqa: F811
    errors: list[str] = []
    page = _page(browser, errors)
    _login(page, reviewing.base, reviewing.key("team_admin", "a"))
    yield page
    page.context.close()
    assert errors == [], f"browser errors: {errors}"


def test_a_reviewer_labels_a_queue_and_exports_it_as_a_dataset(
    page: Page, reviewing: Loop, tmp_path: Path
) -> None:
    from playwright.sync_api import expect as see

    page.click("header nav a:has-text('Review')")
    see(page.locator("table.review-queues")).to_contain_text("thumbs-down")
    see(page.locator("table.review-queues")).to_contain_text("0 / 3")
    shot(page, "review-01-queues")
    page.click("table.review-queues button:has-text('Review')")

    seen: list[str] = []
    for n in range(3):
        page.wait_for_selector("#label-form")
        conversation = page.inner_text(".conversation")
        question = next(q for q in QUESTIONS if q in conversation)
        assert QUESTIONS[question] in conversation  # the answer being judged
        assert "recorded in the audit log" in conversation
        seen.append(question)
        page.check("#metric-thumbs input[value=false]")
        if n == 0:
            page.select_option("#metric-issue select", "wrong")
            page.fill("textarea[name=correction]", "Canberra is the capital of Australia.")
            shot(page, "review-02-item")
        page.click("#save-label")
    see(page.locator("[role=status]")).to_contain_text("Nothing left for you")
    see(page.locator(".kpis")).to_contain_text("3 / 3")
    shot(page, "review-03-done")
    assert sorted(seen) == sorted(QUESTIONS)

    labels = reviewing.wait_scores(4, source="reviewer")
    assert len([s for s in labels if s["metric"] == "thumbs"]) == 3
    corrected = [s for s in labels if s["correction"]]
    assert len(corrected) == 1 and corrected[0]["author"] == reviewing.key_id("team_admin", "a")

    page.click("header nav a:has-text('Datasets')")
    page.click("details.create-key summary")
    page.fill("#create-dataset input[name=name]", "reviewed")
    page.select_option("#create-dataset select[name=from_queue]", label="thumbs-down")
    page.click("#create-dataset-button")
    see(page.locator("#row-count")).to_have_text("3")
    shot(page, "review-04-dataset")
    with page.expect_download() as download:
        page.click("#export-openai-chat")
    saved = tmp_path / "reviewed.jsonl"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "reviewed-v1-openai-chat.jsonl"
    lines = parse_jsonl(saved.read_bytes(), "openai-chat")
    targets = {line["messages"][0]["content"]: line["messages"][-1]["content"] for line in lines}
    assert targets == {
        "Capital of Australia?": "Canberra is the capital of Australia.",
        "What is 7 * 8?": "54.",
        "Who wrote Hamlet?": "Marlowe.",
    }
