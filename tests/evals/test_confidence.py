"""Per-trace confidence and malformed answers against the fake upstream, streamed and not:
logprobs become the trace's mean and least token log-probability; an answer cut at
`finish_reason: length` is `truncated`; an answer that does not validate against the request's
`response_format` is `invalid_json`; both are counted in Prometheus."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import openai
import pytest

from opsgate.chat import ChatRequest
from opsgate.evals.completions import CompletionCheck, JsonCheck
from opsgate.trace import TraceRecord
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer, wait_for_trace
from tests.fixtures.upstream import FakeUpstream, Reply

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "people": {"type": "integer"}},
    "required": ["city"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}
_n = itertools.count()


@pytest.fixture
def server(gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]) -> GatewayServer:
    deployment = {"provider": "openai", "base_url": upstreams["alpha"].url, "model": "up"}
    return gateway(
        {
            "models": [{"name": "bot", "deployments": [{**deployment, "api_key": "sk"}]}],
            "router": {"retries": 0},
            "traces": {"flush_interval": 0.05},
        }
    )


def ask(server: GatewayServer, stream: bool, **params: Any) -> tuple[str, str]:
    """One request through the openai SDK (a fresh question: never a cache hit); the trace id
    and the answer's text as the client got it."""
    client = openai.OpenAI(base_url=server.url, api_key="none", max_retries=0)
    messages = [{"role": "user", "content": f"question {next(_n)}"}]
    raw = client.chat.completions.with_raw_response.create(
        model="bot",
        messages=messages,  # type: ignore[arg-type]
        stream=stream,
        **params,
    )
    answer: Any = raw.parse()
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
    else:
        text = answer.choices[0].message.content or ""
    client.close()
    return raw.headers["x-opsgate-trace-id"], text


@pytest.mark.integration
@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_become_the_traces_confidence(
    server: GatewayServer, upstreams: dict[str, FakeUpstream], stream: bool
) -> None:
    upstreams["alpha"].default = Reply("one two three four", logprobs=(-0.1, -0.5, -2.0, -0.2))
    trace_id, text = ask(server, stream, logprobs=True)
    assert text == "one two three four"
    trace = wait_for_trace(server, trace_id)
    assert trace["logprob_mean"] == pytest.approx(-0.7)
    assert trace["logprob_min"] == pytest.approx(-2.0)
    assert trace["malformed"] is None
    asked = upstreams["alpha"].requests[-1].body
    assert asked["logprobs"] is True  # passed through unchanged
    # not asked for (the upstream sends none): no confidence
    plain = wait_for_trace(server, ask(server, stream)[0])
    assert (plain["logprob_mean"], plain["logprob_min"]) == (None, None)
    # asked for, but the upstream sends null
    upstreams["alpha"].default = Reply("no numbers here")
    none = wait_for_trace(server, ask(server, stream, logprobs=True)[0])
    assert none["logprob_mean"] is None


@pytest.mark.integration
@pytest.mark.parametrize("stream", [False, True])
def test_malformed_answers_are_flagged_and_counted(
    server: GatewayServer, upstreams: dict[str, FakeUpstream], stream: bool
) -> None:
    fake = upstreams["alpha"]
    cases: list[tuple[Reply, dict[str, Any], str | None]] = [
        (Reply('{"city": "Paris", "people": 3}'), {"response_format": JSON_SCHEMA}, None),
        (Reply('{"city": 3}'), {"response_format": JSON_SCHEMA}, "invalid_json"),
        (Reply('{"town": "Paris"}'), {"response_format": JSON_SCHEMA}, "invalid_json"),
        (Reply("Paris, of course."), {"response_format": JSON_SCHEMA}, "invalid_json"),
        (Reply('{"city": "Par'), {"response_format": JSON_SCHEMA}, "invalid_json"),
        (Reply('{"city": "Par', finish_reason="length"), {"response_format": JSON_SCHEMA},
         "truncated"),
        (Reply("a long answer cut", finish_reason="length"), {}, "truncated"),
        (Reply("[1, 2]"), {"response_format": {"type": "json_object"}}, "invalid_json"),
        (Reply('{"any": 1}'), {"response_format": {"type": "json_object"}}, None),
        (Reply("plain text"), {"response_format": {"type": "text"}}, None),
        (Reply("plain text"), {}, None),
    ]  # fmt: skip
    for reply, params, flag in cases:
        fake.default = reply
        trace_id, _ = ask(server, stream, **params)
        trace = wait_for_trace(server, trace_id)
        assert trace["malformed"] == flag, (reply, params, trace["malformed"])
    metrics = httpx.get(f"{server.base}/metrics").text
    assert 'opsgate_malformed_completions_total{kind="invalid_json",model="bot"} 5.0' in metrics
    assert 'opsgate_malformed_completions_total{kind="truncated",model="bot"} 2.0' in metrics


@pytest.mark.integration
def test_malformed_traces_are_listed_by_flag(
    server: GatewayServer, upstreams: dict[str, FakeUpstream]
) -> None:
    upstreams["alpha"].default = Reply("cut short", finish_reason="length")
    cut = ask(server, False)[0]
    upstreams["alpha"].default = Reply("fine")
    fine = ask(server, True)[0]
    wait_for_trace(server, cut), wait_for_trace(server, fine)
    listed = httpx.get(f"{server.base}/admin/v1/traces", params={"malformed": "truncated"})
    assert listed.status_code == 200, listed.text
    assert [t["id"] for t in listed.json()["data"]] == [cut]


def test_the_check_reads_only_the_first_choice_and_finite_numbers() -> None:
    req = ChatRequest(model="m", messages=[], params={"logprobs": True})
    check = CompletionCheck.of(req)
    assert check is not None
    tokens = [{"logprob": -1.0}, {"logprob": float("-inf")}, {"logprob": "x"}, {"logprob": -3}]
    check.response(
        {
            "choices": [
                {"index": 1, "logprobs": {"content": [{"logprob": -9.0}]}},
                {"index": 0, "message": {"content": "hi"}, "logprobs": {"content": tokens}},
            ]
        }
    )
    trace = TraceRecord("t", 0.0, 1.0, "chat", "m", finish_reason="stop")
    check.apply(trace)
    assert (trace.logprob_mean, trace.logprob_min, trace.malformed) == (-2.0, -3.0, None)
    assert CompletionCheck.of(ChatRequest(model="m", messages=[])) is None
    assert CompletionCheck.of(ChatRequest(model="m", messages=[], params={"logprobs": 5})) is None


def test_a_schema_that_is_not_valid_itself_asks_only_for_json() -> None:
    check = JsonCheck.of({"type": "json_schema", "json_schema": {"schema": {"type": 12}}})
    assert check is not None and check.validator is None
    assert check.problem(json.dumps({"a": 1})) is None
    assert check.problem("nope") is not None
    assert JsonCheck.of({"type": "json_schema"}) is not None
    assert JsonCheck.of("json") is None and JsonCheck.of({"type": "text"}) is None
    strict = JsonCheck.of(JSON_SCHEMA)
    assert strict is not None
    assert strict.problem('{"city": 3}') == "city: 3 is not of type 'string'"
