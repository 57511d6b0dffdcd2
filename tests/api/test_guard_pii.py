"""PII and secrets guardrails through a real gateway, driven by the official `openai` SDK:
what the upstream receives, what the caller gets back, what the trace, the stored body, the
metrics and the alert channel say."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.api.test_openai_compat import oa, one_model
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.gateway import wait_for_trace as trace
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration

EMAIL, PHONE, SSN = "ann.smith@example.com", "+1 415-555-2671", "123-45-6789"
KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ0x"
ASK = [{"role": "user", "content": f"Email {EMAIL} or call {PHONE} about my order."}]


def start(
    gateway: GatewayFactory, fake: FakeUpstream, guard: dict[str, Any], **extra: Any
) -> GatewayServer:
    config = {**one_model(oa("a", fake)), "guard": guard, "traces": {"flush_interval": 0.05}}
    return gateway({**config, **extra})


_CLIENTS: list[openai.OpenAI] = []


def client(gw: GatewayServer) -> openai.OpenAI:
    """One SDK client per gateway, closed after the test (see `_close_clients`)."""
    for c in _CLIENTS:
        if str(c.base_url).rstrip("/") == gw.url:
            return c
    made = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    _CLIENTS.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def sent_text(fake: FakeUpstream) -> str:
    return json.dumps(fake.requests[-1].body["messages"])


def test_pii_redacted_before_the_upstream_and_restored_in_the_answer(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake, {"default": {"pii": "redact", "restore": True}})
    fake.script(Reply(text="I wrote to <EMAIL_1> and will call <PHONE_1> today."))
    raw = client(gw).chat.completions.with_raw_response.create(model="m", messages=ASK)
    sent = sent_text(fake)
    assert EMAIL not in sent and "415-555" not in sent
    assert "Email <EMAIL_1> or call <PHONE_1> about my order." in sent
    answer = raw.parse().choices[0].message.content
    assert answer == f"I wrote to {EMAIL} and will call {PHONE} today."

    fake.script(Reply(text="Sure, <EMAIL_1> it is, and <PHONE_1> too.", stream_chunks=7))
    stream = client(gw).chat.completions.create(model="m", messages=ASK, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == f"Sure, {EMAIL} it is, and {PHONE} too."
    assert EMAIL not in sent_text(fake)

    record = trace(gw, raw.headers["x-opsgate-trace-id"])
    assert record["guard_verdicts"] == [
        {"check": "pii", "stage": "input", "action": "redact", "types": {"EMAIL": 1, "PHONE": 1}}
    ]
    assert any(s["name"] == "guard_input" for s in record["spans"])


def test_without_restore_the_caller_sees_placeholders(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake, {"default": {"pii": "redact", "secrets": "redact"}})
    fake.script(Reply(text="Noted <EMAIL_1>."))
    messages = [{"role": "user", "content": f"I am {EMAIL}; my key is {KEY}"}]
    resp = client(gw).chat.completions.create(model="m", messages=messages)
    assert resp.choices[0].message.content == "Noted <EMAIL_1>."
    assert "I am <EMAIL_1>; my key is <API_KEY_1>" in sent_text(fake)


def test_pii_block_is_a_400_with_a_code_and_nothing_reaches_the_upstream(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake, {"default": {"pii": "block"}, "keys": {}})
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"my SSN is {SSN}"}]
        )
    assert info.value.code == "pii_detected"
    assert "US_SSN" in info.value.message and SSN not in info.value.message
    assert fake.requests == []
    record = trace(gw, info.value.response.headers["x-opsgate-trace-id"])
    assert record["http_status"] == 400 and record["error_type"] == "pii_detected"
    assert record["guard_verdicts"][0]["action"] == "block"


def test_flagged_request_passes_traced_and_counted_in_metrics(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake, {"default": {"pii": "flag", "secrets": "flag"}})
    raw = client(gw).chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": f"I am {EMAIL}, key {KEY}"}]
    )
    assert raw.parse().choices[0].message.content == "hello from alpha"
    assert EMAIL in sent_text(fake), "flag passes the request unchanged"
    record = trace(gw, raw.headers["x-opsgate-trace-id"])
    assert [(v["check"], v["action"]) for v in record["guard_verdicts"]] == [
        ("pii", "flag"),
        ("secrets", "flag"),
    ]
    metrics = httpx.get(f"{gw.base}/metrics").text
    line = 'opsgate_guard_verdicts_total{action="flag",check="pii",stage="input"} 1.0'
    assert line in metrics
    client(gw).chat.completions.create(model="m", messages=[{"role": "user", "content": EMAIL}])
    assert line.replace("} 1.0", "} 2.0") in httpx.get(f"{gw.base}/metrics").text


def test_masked_bodies_keep_placeholders_not_values(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake, {}, traces={"flush_interval": 0.05, "store_bodies": "masked"})
    fake.script(Reply(text=f"Your number {PHONE} is noted"))
    raw = client(gw).chat.completions.with_raw_response.create(model="m", messages=ASK)
    assert EMAIL in sent_text(fake), "guard is off: the model sees the request as sent"
    record = trace(gw, raw.headers["x-opsgate-trace-id"], include_bodies="true")
    stored_request = record["request_body"]["data"]
    assert EMAIL not in stored_request and "<EMAIL_1>" in stored_request
    assert record["response_body"]["data"] == "Your number <PHONE_1> is noted"


def test_output_pii_the_caller_did_not_send_is_redacted(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake, {"default": {"output_pii": "redact"}})
    fake.script(Reply(text=f"Ask bob@corp.example or {EMAIL}."))
    resp = client(gw).chat.completions.create(model="m", messages=ASK)
    assert resp.choices[0].message.content == f"Ask [REDACTED_EMAIL] or {EMAIL}."
    fake.script(Reply(text="Ask bob@corp.example now please", stream_chunks=4))
    stream = client(gw).chat.completions.create(model="m", messages=ASK, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Ask [REDACTED_EMAIL] now please"


def test_pii_spike_alert_reaches_the_alert_channel(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    monitor = {"min_requests": 3, "pii_rate": 0.5, "window": 60}
    gw = start(gateway, fake, {"default": {"pii": "flag"}, "monitor": monitor})
    for _ in range(4):
        client(gw).chat.completions.create(model="m", messages=ASK)
    deadline = time.monotonic() + 10
    while True:
        events = httpx.get(f"{gw.base}/admin/v1/alerts", params={"kind": "guard.*"}).json()
        if events.get("data") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    kinds = [e["kind"] for e in events["data"]]
    assert kinds == ["guard.pii_spike"], "one alert, then the cooldown holds the rest"
    assert events["data"][0]["labels"]["key_id"] == "anonymous"
