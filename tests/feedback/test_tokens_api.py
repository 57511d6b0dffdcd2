"""Feedback tokens on a real gateway: every answer carries one, a browser posts with it and no
key, and it scores only its own trace (or session) with only its metrics, until it expires."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.access.helpers import MASTER, MSG
from tests.feedback.conftest import FbStarter
from tests.feedback.test_api import ok, refused, wait_scores

pytestmark = pytest.mark.integration

SHOP = "https://shop.example"


def test_a_browser_scores_with_the_token_of_its_answer(
    database_url: str, feedback_gateway: FbStarter
) -> None:
    fb = feedback_gateway(database_url, token_metrics=["thumbs", "resolved"], cors_origins=[SHOP])
    key = fb.key("service", "a")
    answer = fb.chat(key, session="conv-7", user="bob")
    other = fb.chat(key)
    assert answer.token and answer.token.startswith("ogf1.")
    thumbs = {"trace_id": answer.trace_id, "metric": "thumbs", "value": True}
    posted = fb.post(thumbs, key=None, token=answer.token, headers={"origin": SHOP})
    assert posted.headers["access-control-allow-origin"] == SHOP
    [ack] = ok(posted)
    assert ack["source"] == "end_user"

    def mismatch(body: dict[str, object], param: str) -> None:
        refused(fb.post(body, key=None, token=answer.token), 403, "feedback_token_mismatch", param)

    mismatch({**thumbs, "trace_id": other.trace_id}, "trace_id")  # replayed for another trace
    mismatch({**thumbs, "metric": "rating", "value": 5}, "metric")  # not in the token's set
    mismatch({**thumbs, "source": "api"}, "source")
    mismatch({"session_id": "conv-8", "metric": "resolved", "value": True}, "session_id")
    session = {"session_id": "conv-7", "metric": "resolved", "value": True}
    ok(fb.post(session, key=None, token=answer.token))

    head, signature = answer.token.rsplit(".", 1)
    forged = f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    refused(fb.post(thumbs, key=None, token=forged), 401, "invalid_feedback_token")
    refused(fb.post(thumbs, key=None, token="ogf1.e30.abc"), 401, "invalid_feedback_token")

    stored = wait_scores(fb, 2)
    assert {s["source"] for s in stored} == {"end_user"}
    assert {s["author"] for s in stored} == {None}
    assert {s["end_user"] for s in stored} == {"bob"}

    # Streamed answers carry a token too (headers leave with the first chunk).
    client = openai.OpenAI(base_url=fb.server.url, api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MSG,  # type: ignore[arg-type]
        stream=True,
    )
    for _ in raw.parse():
        pass
    client.close()
    assert raw.headers["x-opsgate-feedback-token"].startswith("ogf1.")

    # Cross-origin pages: preflight answered for listed origins only.
    url = f"{fb.server.base}/v1/feedback"
    preflight = httpx.options(url, headers={"origin": SHOP})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == SHOP
    assert "x-opsgate-feedback-token" in preflight.headers["access-control-allow-headers"]
    assert httpx.options(url, headers={"origin": "https://evil.example"}).status_code == 403


def test_an_expired_token_is_refused(database_url: str, feedback_gateway: FbStarter) -> None:
    fb = feedback_gateway(database_url, token_ttl=1)
    answer = fb.chat(fb.key("service", "a"))
    assert answer.token is not None
    body = {"trace_id": answer.trace_id, "metric": "thumbs", "value": False}
    deadline = time.monotonic() + 10
    while True:
        resp = fb.post(body, key=None, token=answer.token)
        if resp.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    refused(resp, 401, "feedback_token_expired")


def test_without_metrics_there_is_no_token_and_no_feedback(
    database_url: str, feedback_gateway: FbStarter
) -> None:
    fb = feedback_gateway(database_url, metrics={})
    answer = fb.chat(MASTER)
    assert answer.token is None
    body = {"trace_id": answer.trace_id, "metric": "thumbs", "value": True}
    refused(fb.post(body), 404, "feedback_not_configured")
