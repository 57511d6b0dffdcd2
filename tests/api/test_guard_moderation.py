"""The moderation check through a real gateway with the official `openai` SDK: a request
blocked by a deny rule (the upstream never called), an offensive streamed answer redacted chunk
by chunk, an answer blocked outright, and the verdicts on traces and in metrics."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.api.test_guard_pii import _close_clients, client, start, trace  # noqa: F401
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration
MODERATION: dict[str, Any] = {
    "deny": [{"name": "competitors", "words": ["Globex"], "regex": [r"(a+)+$"]}],
}


def test_input_blocked_by_a_deny_rule_never_reaches_the_upstream(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    guard = {"moderation": MODERATION, "default": {"moderation": "block"}}
    gw = start(gateway, fake, guard)
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Is Globex cheaper than you?"}]
        )
    assert info.value.code == "content_blocked"
    assert fake.requests == []
    record = trace(gw, info.value.response.headers["x-opsgate-trace-id"])
    [verdict] = record["guard_verdicts"]
    assert (verdict["check"], verdict["stage"], verdict["action"]) == (
        "moderation",
        "input",
        "block",
    )
    assert verdict["types"] == {"DENIED_COMPETITORS": 1}
    # a pathological pattern over a long input answers at once (RE2), and passes
    long = {"role": "user", "content": "a" * 50_000 + "!"}
    assert client(gw).chat.completions.create(model="m", messages=[long]).choices
    metrics = httpx.get(f"{gw.base}/metrics").text
    assert 'opsgate_guard_verdicts_total{action="block",check="moderation",stage="input"} 1.0' in (
        metrics
    )


def test_an_offensive_streamed_answer_is_redacted_and_a_json_one_blocked(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    guard = {"moderation": MODERATION, "default": {"output_moderation": "redact"}}
    gw = start(gateway, fake, guard)
    fake.script(
        Reply(text="Honestly, that plan is shit and you know it. Try again.", stream_chunks=11)
    )
    stream = client(gw).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "How is my plan?"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Honestly, that plan is [REDACTED_PROFANITY] and you know it. Try again."
    fake.script(Reply(text="A polite answer about Globex."))
    raw = client(gw).chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "Tell me about rivals."}]
    )
    answer = raw.parse().choices[0].message.content
    assert answer == "A polite answer about [REDACTED_DENIED_COMPETITORS]."
    record = trace(gw, raw.headers["x-opsgate-trace-id"])
    assert [
        (v["check"], v["stage"], v["action"], v["types"]) for v in record["guard_verdicts"]
    ] == [("moderation", "output", "redact", {"DENIED_COMPETITORS": 1})]
    strict = start(gateway, fake, {"default": {"output_moderation": "block"}})
    fake.script(Reply(text="You absolute idiot."))
    with pytest.raises(openai.BadRequestError) as info:
        client(strict).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Rate me."}]
        )
    assert info.value.code == "output_content_blocked"
