"""Contract tests for the Anthropic dialect: OpenAI requests out, Anthropic answers back in.

Transcripts in `golden/` follow the Messages API wire format; the expected files hold what the
gateway must make of them. Edge cases follow, then the provider over a real loopback server.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from opsgate.chat import ChatChunk, ChatRequest
from opsgate.config.schema import DeploymentConfig
from opsgate.errors import BadRequestError
from opsgate.providers import provider_class
from opsgate.providers.anthropic import AnthropicProvider
from opsgate.providers.anthropic_stream import StreamTranslator
from opsgate.providers.anthropic_wire import (
    finish_reason,
    from_wire,
    to_wire,
    usage_from_wire,
)
from opsgate.providers.base import CallContext
from opsgate.providers.errors import (
    StreamBrokenError,
    UpstreamProtocolError,
    UpstreamStatusError,
)
from opsgate.providers.sse import SSEvent, read_events
from opsgate.providers.transport import HTTPClient

if TYPE_CHECKING:
    from conftest import WireKit

GOLDEN = Path(__file__).parent / "golden"
CREATED = 1_700_000_000
MODEL = "claude-sonnet-4-20250514"


def _inputs(pattern: str) -> list[str]:
    return sorted(p.name.split(".")[0] for p in GOLDEN.glob(pattern) if ".expected" not in p.name)


ANSWERS = _inputs("anthropic_response_*.json")
STREAMS = _inputs("anthropic_stream_*.sse")
REQUESTS = _inputs("anthropic_request_*.json")


async def replay(wire: WireKit, raw: bytes) -> list[ChatChunk]:
    """The Anthropic provider's stream loop, minus the network."""
    translator = StreamTranslator(model="configured-model", created=CREATED)
    chunks: list[ChatChunk] = []
    async for event in read_events(wire.lines(raw)):
        chunks.extend(translator.feed(event))
        if translator.done:
            return chunks
    translator.finish()
    return chunks


def req(messages: list[dict[str, Any]], **params: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=messages, params=params)


def ev(data: dict[str, Any]) -> SSEvent:
    return SSEvent(str(data["type"]), json.dumps(data))


USER = {"role": "user", "content": "hi"}


# -- golden transcripts ----------------------------------------------------------------------


def test_golden_files_are_present() -> None:
    assert ANSWERS == ["anthropic_response_text", "anthropic_response_tool_use"]
    assert STREAMS == ["anthropic_stream_text", "anthropic_stream_tool_use"]
    assert len(REQUESTS) >= 4


@pytest.mark.parametrize("name", ANSWERS)
def test_answer_transcript(wire: WireKit, name: str) -> None:
    resp = from_wire(orjson.loads(wire.read(f"{name}.json")), created=CREATED)
    wire.check(name, resp.body)


@pytest.mark.parametrize("name", STREAMS)
async def test_stream_transcript(wire: WireKit, name: str) -> None:
    chunks = await replay(wire, wire.read(f"{name}.sse"))
    wire.check(name, {"chunks": [c.body for c in chunks], "assembled": wire.assemble(chunks)})


@pytest.mark.parametrize("name", REQUESTS)
def test_request_translation(wire: WireKit, name: str) -> None:
    case = orjson.loads(wire.read(f"{name}.json"))
    body = to_wire(wire.request(case["request"]), case["model"], case["default_max_tokens"])
    wire.check(name, body)


async def test_streamed_tool_input_is_the_json_anthropic_meant(wire: WireKit) -> None:
    chunks = await replay(wire, wire.read("anthropic_stream_tool_use.sse"))
    calls = wire.assemble(chunks)["tool_calls"]
    assert [orjson.loads(c["arguments"]) for c in calls] == [
        {"location": "San Francisco, CA", "unit": "fahrenheit"},
        {"timezone": "America/Los_Angeles"},
    ]


async def test_stream_and_answer_agree(wire: WireKit) -> None:
    """The streamed text equals what the same answer gives unstreamed."""
    chunks = await replay(wire, wire.read("anthropic_stream_text.sse"))
    assert wire.assemble(chunks)["content"] == "Hello! How can I help you today?"
    assert chunks[-1].is_usage_only
    assert all(not c.is_usage_only for c in chunks[:-1])


# -- requests ----------------------------------------------------------------------------------


def test_n_above_one_is_refused() -> None:
    with pytest.raises(BadRequestError) as info:
        to_wire(req([USER], n=2), MODEL)
    assert (info.value.param, info.value.status) == ("n", 400)
    assert to_wire(req([USER], n=1), MODEL)["messages"] == [USER]


def test_max_tokens_default_and_precedence() -> None:
    assert to_wire(req([USER]), MODEL, 777)["max_tokens"] == 777
    assert to_wire(req([USER], max_tokens=5), MODEL)["max_tokens"] == 5
    body = to_wire(req([USER], max_tokens=5, max_completion_tokens=9), MODEL)
    assert body["max_tokens"] == 9


def test_consecutive_same_role_messages_merge() -> None:
    body = to_wire(
        req(
            [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "c"},
                {"role": "assistant", "content": "d"},
            ]
        ),
        MODEL,
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}],
        },
    ]


def test_tool_results_merge_into_one_user_turn_before_the_next_question() -> None:
    call = {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    body = to_wire(
        req(
            [
                USER,
                {"role": "assistant", "content": "Let me check.", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "42"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": ""},
                {"role": "user", "content": "and?"},
            ]
        ),
        MODEL,
    )
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"},
                {"type": "tool_result", "tool_use_id": "toolu_2"},
                {"type": "text", "text": "and?"},
            ],
        },
    ]


def test_tool_results_come_first_in_a_merged_user_turn() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    body = to_wire(
        req(
            [
                USER,
                {"role": "assistant", "tool_calls": [call]},
                {"role": "user", "content": "also this"},
                {"role": "tool", "tool_call_id": "t1", "content": "done"},
            ]
        ),
        MODEL,
    )
    assert body["messages"][1]["content"][0]["input"] == {"x": 1}
    assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "text"]


def test_translation_leaves_the_request_untouched(wire: WireKit) -> None:
    """Retries and fallbacks to other dialects reuse the same request object."""
    for name in REQUESTS:
        case = orjson.loads(wire.read(f"{name}.json"))
        request = wire.request(case["request"])
        before = copy.deepcopy((request.messages, request.params))
        to_wire(request, MODEL)
        assert (request.messages, request.params) == before


def test_only_system_messages_leave_no_turns() -> None:
    body = to_wire(
        req([{"role": "system", "content": "s"}, {"role": "system", "content": ""}]), MODEL
    )
    assert (body["system"], body["messages"]) == ("s", [])


def test_no_system_key_without_system_messages() -> None:
    assert "system" not in to_wire(req([USER]), MODEL)


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("END", ["END"]),
        (["a", "b"], ["a", "b"]),
        (["\n", " x "], [" x "]),
        (None, None),
        ([], None),
    ],
)
def test_stop_sequences(stop: Any, expected: list[str] | None) -> None:
    assert to_wire(req([USER], stop=stop), MODEL).get("stop_sequences") == expected


def test_sampling_and_user_fields_map_and_openai_only_fields_drop() -> None:
    body = to_wire(
        req([USER], temperature=0, top_p=1, user="u1", seed=3, logprobs=True, frequency_penalty=1),
        MODEL,
    )
    assert {k: body[k] for k in ("temperature", "top_p", "metadata")} == {
        "temperature": 0,
        "top_p": 1,
        "metadata": {"user_id": "u1"},
    }
    assert not {"seed", "logprobs", "frequency_penalty", "user", "n"} & set(body)


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any] | None) -> None:
    body = to_wire(req([USER], tools=[TOOL], tool_choice=choice), MODEL)
    assert body.get("tool_choice") == expected
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]


def test_parallel_tool_calls_false_disables_parallel_use() -> None:
    body = to_wire(req([USER], tools=[TOOL], parallel_tool_calls=False), MODEL)
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    body = to_wire(req([USER], tools=[TOOL], tool_choice="none", parallel_tool_calls=False), MODEL)
    assert body["tool_choice"] == {"type": "none"}


def test_tool_choice_without_tools_is_not_sent() -> None:
    body = to_wire(req([USER], tools=[], tool_choice="auto"), MODEL)
    assert "tools" not in body
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("messages", "params", "param"),
    [
        ([{"role": "function", "name": "f", "content": "x"}], {}, "messages"),
        (
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            {},
            "messages",
        ),
        ([{"role": "user", "content": 42}], {}, "messages"),
        ([{"role": "tool", "content": "no id"}], {}, "messages"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:xx"}}]}],
            {},
            "messages",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{"}}
                    ],
                }
            ],
            {},
            "messages",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "t",
                            "type": "function",
                            "function": {"name": "f", "arguments": "[]"},
                        }
                    ],
                }
            ],
            {},
            "messages",
        ),
        ([USER], {"tools": [{"type": "web_search"}]}, "tools"),
        ([USER], {"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_what_anthropic_cannot_take_is_a_bad_request(
    messages: list[dict[str, Any]], params: dict[str, Any], param: str
) -> None:
    with pytest.raises(BadRequestError) as info:
        to_wire(req(messages, **params), MODEL)
    assert info.value.param == param


def test_inline_pdf_becomes_a_document_block() -> None:
    part = {
        "type": "file",
        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
    }
    body = to_wire(req([{"role": "user", "content": [part]}]), MODEL)
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
        }
    ]


def test_stream_flag_is_sent_only_for_streams() -> None:
    assert "stream" not in to_wire(req([USER]), MODEL)
    streamed = ChatRequest(model="m", messages=[USER], stream=True)
    assert to_wire(streamed, MODEL)["stream"] is True


# -- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reason(stop_reason: str | None, expected: str) -> None:
    assert finish_reason(stop_reason) == expected


def test_usage_counts_cache_reads_and_writes_as_prompt_tokens() -> None:
    usage = usage_from_wire(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 5,
            "output_tokens": 7,
        }
    )
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (115, 100, 7)
    assert usage_from_wire(None).total_tokens == 0


def test_answer_without_text_has_null_content() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    resp = from_wire(body, created=CREATED)
    assert resp.body["choices"][0]["message"] == {"role": "assistant", "content": None}
    assert resp.finish_reasons == ["length"]


@pytest.mark.parametrize(
    "body",
    [{"type": "error", "error": {"type": "api_error", "message": "x"}}, {"type": "message"}],
)
def test_answer_that_is_not_a_message_is_a_protocol_error(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamProtocolError):
        from_wire(body)


# -- streams -----------------------------------------------------------------------------------

START = {
    "type": "message_start",
    "message": {"id": "msg_1", "model": MODEL, "usage": {"input_tokens": 9, "output_tokens": 1}},
}
TEXT_START = {
    "type": "content_block_start",
    "index": 0,
    "content_block": {"type": "text", "text": ""},
}
TEXT = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def test_overloaded_before_content_is_a_retryable_529() -> None:
    t = StreamTranslator(created=CREATED)
    t.feed(ev(START))
    t.feed(ev(TEXT_START))
    with pytest.raises(UpstreamStatusError) as info:
        t.feed(ev(OVERLOADED))
    assert (info.value.upstream_status, info.value.retryable, info.value.status) == (529, True, 502)


def test_error_after_content_breaks_the_stream() -> None:
    t = StreamTranslator(created=CREATED)
    t.feed(ev(START))
    t.feed(ev(TEXT))
    with pytest.raises(StreamBrokenError, match="overloaded_error: Overloaded"):
        t.feed(ev(OVERLOADED))


def test_other_error_events_break_the_stream() -> None:
    t = StreamTranslator(created=CREATED)
    with pytest.raises(StreamBrokenError, match="api_error"):
        t.feed(ev({"type": "error", "error": {"type": "api_error", "message": "Internal"}}))


def test_stream_without_message_stop_is_broken() -> None:
    t = StreamTranslator(created=CREATED)
    for data in (START, TEXT_START, TEXT):
        t.feed(ev(data))
    with pytest.raises(StreamBrokenError):
        t.finish()


@pytest.mark.parametrize(
    "event",
    [
        SSEvent("message_start", "{not json"),
        SSEvent("content_block_delta", "[1]"),
        SSEvent("message_start", '{"type": "message_start"}'),
        SSEvent("content_block_start", '{"type": "content_block_start", "index": 0}'),
        SSEvent(
            "content_block_delta",
            '{"type":"content_block_delta","index":3,'
            '"delta":{"type":"input_json_delta","partial_json":"{}"}}',
        ),
    ],
)
def test_malformed_events_are_protocol_errors(event: SSEvent) -> None:
    with pytest.raises(UpstreamProtocolError):
        StreamTranslator(created=CREATED).feed(event)


def test_unknown_events_and_thinking_are_skipped() -> None:
    t = StreamTranslator(created=CREATED)
    assert t.feed(ev({"type": "ping"})) == []
    assert t.feed(ev({"type": "brand_new_event", "x": 1})) == []
    thinking = {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}}
    assert t.feed(ev(thinking)) == []
    delta = {"type": "thinking_delta", "thinking": "hmm"}
    assert t.feed(ev({"type": "content_block_delta", "index": 0, "delta": delta})) == []
    assert t.feed(ev({"type": "content_block_stop", "index": 0})) == []


def test_later_usage_overrides_earlier_counts() -> None:
    t = StreamTranslator(created=CREATED)
    t.feed(ev(START))
    usage = {"input_tokens": 20, "cache_read_input_tokens": None, "output_tokens": 30}
    delta = {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": usage}
    (chunk,) = t.feed(ev(delta))
    assert chunk.body["choices"][0]["finish_reason"] == "length"
    (last,) = t.feed(ev({"type": "message_stop"}))
    assert last.body["usage"] == {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50}
    assert last.body["choices"] == []


# -- the provider over a loopback server -------------------------------------------------------


class FakeAnthropic:
    """A tiny upstream that records requests and answers with a scripted status and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.status = 200
        self.body = b""
        self.content_type = "application/json"

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.json()))
        return web.Response(status=self.status, body=self.body, content_type=self.content_type)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
    app = web.Application()
    app.router.add_post("/v1/messages", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def http() -> AsyncIterator[HTTPClient]:
    client = HTTPClient()
    try:
        yield client
    finally:
        await client.aclose()


def provider(base_url: str, http: HTTPClient, **options: Any) -> AnthropicProvider:
    deployment = DeploymentConfig(
        provider="anthropic",
        model=MODEL,
        base_url=base_url,
        api_key="sk-ant-test",  # type: ignore[arg-type]
        headers={"anthropic-beta": "prompt-caching-2024-07-31"},
        options=options,
    )
    return AnthropicProvider(deployment, http)


async def call(p: AnthropicProvider, request: ChatRequest) -> object:
    """The answer, or the whole stream, for one request."""
    if request.stream:
        return [c async for c in p.stream(request, CTX)]
    return await p.complete(request, CTX)


CTX = CallContext(trace_id="t1", timeout=5, stream_idle_timeout=5, extra_headers={"x-trace": "t1"})


def test_registered_as_the_anthropic_dialect() -> None:
    assert provider_class("anthropic") is AnthropicProvider
    assert AnthropicProvider.capabilities.embeddings is False


@pytest.mark.parametrize(("value", "ok"), [(1, True), (0, False), ("100", False), (True, False)])
def test_check_default_max_tokens(value: Any, ok: bool) -> None:
    deployment = DeploymentConfig(
        provider="anthropic", model=MODEL, options={"default_max_tokens": value}
    )
    assert (AnthropicProvider.check(deployment) == []) is ok


@pytest.mark.integration
async def test_complete_over_http(
    wire: WireKit, upstream: tuple[FakeAnthropic, str], http: HTTPClient
) -> None:
    fake, base = upstream
    fake.body = wire.read("anthropic_response_tool_use.json")
    resp = await provider(base, http, default_max_tokens=321).complete(req([USER]), CTX)
    assert resp.finish_reasons == ["tool_calls"]
    path, headers, body = fake.requests[0]
    assert path == "/v1/messages"
    assert headers["x-api-key"] == "sk-ant-test"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert headers["x-trace"] == "t1"
    assert "authorization" not in {k.lower() for k in headers}
    assert body == {"model": MODEL, "max_tokens": 321, "messages": [USER]}


@pytest.mark.integration
async def test_base_url_with_v1_suffix(
    upstream: tuple[FakeAnthropic, str], http: HTTPClient
) -> None:
    fake, base = upstream
    fake.body = orjson.dumps({"type": "message", "content": [], "stop_reason": "end_turn"})
    await provider(f"{base}/v1", http).complete(req([USER]), CTX)
    assert fake.requests[0][0] == "/v1/messages"


@pytest.mark.integration
async def test_stream_over_http(
    wire: WireKit, upstream: tuple[FakeAnthropic, str], http: HTTPClient
) -> None:
    fake, base = upstream
    fake.body, fake.content_type = wire.read("anthropic_stream_tool_use.sse"), "text/event-stream"
    streamed = ChatRequest(model="m", messages=[USER], stream=True)
    chunks = [c async for c in provider(base, http).stream(streamed, CTX)]
    assert [c.body["choices"] for c in chunks] == [
        c.body["choices"] for c in await replay(wire, fake.body)
    ]
    assert fake.requests[0][2]["stream"] is True


@pytest.mark.integration
async def test_cut_off_stream_over_http(
    wire: WireKit, upstream: tuple[FakeAnthropic, str], http: HTTPClient
) -> None:
    fake, base = upstream
    raw = wire.read("anthropic_stream_text.sse")
    fake.body, fake.content_type = raw[: raw.index(b"event: message_delta")], "text/event-stream"
    streamed = ChatRequest(model="m", messages=[USER], stream=True)
    with pytest.raises(StreamBrokenError):
        await call(provider(base, http), streamed)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("status", "client_status", "retryable"), [(529, 502, True), (400, 400, False)]
)
@pytest.mark.parametrize("stream", [False, True])
async def test_error_status_over_http(
    upstream: tuple[FakeAnthropic, str],
    http: HTTPClient,
    status: int,
    client_status: int,
    retryable: bool,
    stream: bool,
) -> None:
    fake, base = upstream
    fake.status = status
    fake.body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    p, request = provider(base, http), ChatRequest(model="m", messages=[USER], stream=stream)
    with pytest.raises(UpstreamStatusError) as info:
        await call(p, request)
    err = info.value
    assert (err.upstream_status, err.status, err.retryable) == (status, client_status, retryable)
    assert err.message == f"upstream returned {status}: Overloaded"
