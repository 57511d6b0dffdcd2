"""Self-tests of the fake upstream (tests/fixtures/upstream.py), over real HTTP, both dialects."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.upstream import (
    BreakStream,
    FakeUpstream,
    Garbage,
    Hang,
    Reply,
    SlowStream,
    Status,
    StreamError,
    ToolCall,
    embedding_for,
    unused_port,
)

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "k"}
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream("alpha") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeUpstream) -> FakeUpstream:
    server.reset()
    return server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


def chat_request(fake: FakeUpstream, dialect: str, *, stream: bool = False) -> dict[str, Any]:
    """Arguments for `client.post`/`client.stream` hitting `dialect`'s chat endpoint."""
    if dialect == "openai":
        body: dict[str, Any] = {"model": "gpt-x", "messages": MESSAGES}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return {"url": f"{fake.url}/chat/completions", "json": body}
    body = {"model": "claude-x", "max_tokens": 64, "system": "be brief", "messages": MESSAGES[1:]}
    if stream:
        body["stream"] = True
    return {"url": f"{fake.base}/v1/messages", "json": body, "headers": ANTHROPIC_HEADERS}


async def sse_events(resp: httpx.Response) -> list[tuple[str, str]]:
    """(event, data) pairs of an SSE body."""
    events, name = [], "message"
    async for line in resp.aiter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, line.removeprefix("data: ")))
            name = "message"
    return events


async def test_openai_complete(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    resp = await client.post(**chat_request(fake, "openai"), headers={"authorization": "Bearer k"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-x"
    assert body["choices"][0]["message"]["content"] == "hello from alpha"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    [rec] = fake.requests
    assert (rec.method, rec.path, rec.dialect) == ("POST", "/v1/chat/completions", "openai")
    assert rec.headers["authorization"] == "Bearer k"
    assert rec.body == {"model": "gpt-x", "messages": MESSAGES}


async def test_openai_stream_with_usage(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Reply(text="one two three four", usage=(10, 20)))
    async with client.stream("POST", **chat_request(fake, "openai", stream=True)) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = await sse_events(resp)
    assert events[-1] == ("message", "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == (
        "one two three four"
    )
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]][-1] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    assert all(c["model"] == "gpt-x" for c in chunks)


async def test_openai_stream_without_usage(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    args = chat_request(fake, "openai", stream=True)
    del args["json"]["stream_options"]
    async with client.stream("POST", **args) as resp:
        events = await sse_events(resp)
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all(c["choices"] and "usage" not in c for c in chunks)


async def test_openai_tool_call(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    call = ToolCall("get_weather", {"city": "Paris", "unit": "celsius"})
    fake.script(Reply(text="", tool_call=call), Reply(text="", tool_call=call))
    body = (await client.post(**chat_request(fake, "openai"))).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [wire_call] = choice["message"]["tool_calls"]
    assert wire_call["function"]["name"] == "get_weather"
    assert json.loads(wire_call["function"]["arguments"]) == call.arguments
    async with client.stream("POST", **chat_request(fake, "openai", stream=True)) as resp:
        chunks = [json.loads(d) for _, d in (await sse_events(resp))[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    parts = [tc for d in deltas for tc in d.get("tool_calls", ())]
    assert (parts[0]["id"], parts[0]["function"]["name"]) == (call.id, "get_weather")
    args = "".join(p["function"]["arguments"] for p in parts)
    assert json.loads(args) == call.arguments


async def test_anthropic_complete(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Reply(text="sure thing", tool_call=ToolCall("lookup", {"q": "x"})))
    resp = await client.post(**chat_request(fake, "anthropic"))
    assert resp.status_code == 200
    body = resp.json()
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", "claude-x")
    assert body["content"] == [
        {"type": "text", "text": "sure thing"},
        {"type": "tool_use", "id": "call_fake_1", "name": "lookup", "input": {"q": "x"}},
    ]
    assert body["stop_reason"] == "tool_use"
    # prompt: "be brief" + "hi there"; completion: 2 words + "lookup" + '{"q": "x"}' (2)
    assert (body["usage"]["input_tokens"], body["usage"]["output_tokens"]) == (4, 5)
    assert fake.requests[0].dialect == "anthropic"


async def test_anthropic_stream_event_sequence(
    fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    fake.script(Reply(text="a b", tool_call=ToolCall("lookup", {"q": "x"})))
    async with client.stream("POST", **chat_request(fake, "anthropic", stream=True)) as resp:
        events = await sse_events(resp)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 2,
        "content_block_stop",
        "content_block_start",
        *["content_block_delta"] * (len(names) - 10),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(d) for _, d in events]
    assert all(d["type"] == name for d, name in zip(data, names, strict=True))
    assert data[0]["message"]["usage"]["input_tokens"] == 4
    deltas = [d for d in data if d["type"] == "content_block_delta"]
    text = "".join(d["delta"]["text"] for d in deltas if d["index"] == 0)
    partial = "".join(d["delta"]["partial_json"] for d in deltas if d["index"] == 1)
    assert (text, json.loads(partial)) == ("a b", {"q": "x"})
    assert data[-2]["delta"]["stop_reason"] == "tool_use"
    assert data[-2]["usage"]["output_tokens"] == 5


async def test_anthropic_requires_version_and_max_tokens(
    fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    args = chat_request(fake, "anthropic")
    resp = await client.post(args["url"], json=args["json"])
    assert resp.status_code == 400
    assert resp.json()["type"] == "error"
    del args["json"]["max_tokens"]
    resp = await client.post(**args)
    assert resp.json()["error"]["type"] == "invalid_request_error"


async def test_embeddings_and_models(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Status(500))
    models = (await client.get(f"{fake.url}/models")).json()
    assert [m["id"] for m in models["data"]] == ["fake-model"]
    assert (await client.post(f"{fake.url}/embeddings", json={"model": "e", "input": "x"})).is_error
    resp = await client.post(
        f"{fake.url}/embeddings", json={"model": "e", "input": ["hello world", "bye"]}
    )
    body = resp.json()
    assert [d["embedding"] for d in body["data"]] == [
        embedding_for("hello world"),
        embedding_for("bye"),
    ]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    resp = await client.post(
        f"{fake.url}/embeddings",
        json={"model": "e", "input": "bye", "encoding_format": "base64", "dimensions": 4},
    )
    raw = base64.b64decode(resp.json()["data"][0]["embedding"])
    assert struct.unpack("<4f", raw) == pytest.approx(embedding_for("bye", 4), abs=1e-6)


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_status(fake: FakeUpstream, client: httpx.AsyncClient, dialect: str) -> None:
    fake.script(Status(429, retry_after=7, message="slow down"), Status(503, body="down"))
    resp = await client.post(**chat_request(fake, dialect, stream=True))
    assert (resp.status_code, resp.headers["retry-after"]) == (429, "7")
    error = resp.json()["error"]
    assert error["message"] == "slow down"
    assert error["type"] == ("requests" if dialect == "openai" else "rate_limit_error")
    resp = await client.post(**chat_request(fake, dialect))
    assert (resp.status_code, resp.text) == (503, "down")
    assert (await client.post(**chat_request(fake, dialect))).status_code == 200


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_hang_notices_client_timeout(
    fake: FakeUpstream, client: httpx.AsyncClient, dialect: str
) -> None:
    fake.script(Hang(30))
    with pytest.raises(httpx.ReadTimeout):
        await client.post(**chat_request(fake, dialect), timeout=0.2)
    assert await fake.wait_disconnects(1) == 1
    assert (await client.post(**chat_request(fake, dialect))).status_code == 200


async def test_hang_mid_stream(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Hang(30, after_chunks=1))
    lines: list[str] = []

    async def read() -> None:
        args = chat_request(fake, "openai", stream=True)
        async with client.stream("POST", **args, timeout=0.2) as resp:
            lines.extend([line async for line in resp.aiter_lines()])

    with pytest.raises(httpx.ReadTimeout):
        await read()
    assert await fake.wait_disconnects(1) == 1
    assert fake.active == 0


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [True, False])
async def test_break_stream(
    fake: FakeUpstream, client: httpx.AsyncClient, dialect: str, stream: bool
) -> None:
    fake.script(BreakStream(after_chunks=2))
    received: list[tuple[str, str]] = []

    async def read() -> None:
        async with client.stream("POST", **chat_request(fake, dialect, stream=stream)) as resp:
            assert resp.status_code == 200
            if stream:
                async for line in resp.aiter_lines():
                    received.append(("line", line))
            else:
                received.append(("body", (await resp.aread()).decode()))

    with pytest.raises(httpx.RemoteProtocolError):
        await read()
    data_lines = [line for _, line in received if line.startswith("data: ")]
    assert len(data_lines) == (2 if stream else 0)
    assert fake.disconnects == 0


async def test_slow_stream(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(SlowStream(chunk_delay=0.02, text="a b c"))
    started = time.monotonic()
    async with client.stream("POST", **chat_request(fake, "anthropic", stream=True)) as resp:
        events = await sse_events(resp)
    assert time.monotonic() - started >= 0.02 * (len(events) - 1)
    assert events[-1][0] == "message_stop"


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_stream_error_in_band(
    fake: FakeUpstream, client: httpx.AsyncClient, dialect: str
) -> None:
    fake.script(StreamError(after_chunks=2, message="boom"))
    async with client.stream("POST", **chat_request(fake, dialect, stream=True)) as resp:
        events = await sse_events(resp)
    assert len(events) == 3
    assert json.loads(events[-1][1])["error"]["message"] == "boom"


async def test_garbage(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Garbage(), Garbage("{not json"))
    resp = await client.post(**chat_request(fake, "openai"))
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        resp.json()
    async with client.stream("POST", **chat_request(fake, "openai", stream=True)) as resp:
        assert await sse_events(resp) == [("message", "{not json")]


async def test_client_disconnect_mid_stream(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Reply(stream_chunks=50, chunk_delay=0.05))
    async with client.stream("POST", **chat_request(fake, "openai", stream=True)) as resp:
        lines = resp.aiter_lines()
        assert (await anext(lines)).startswith("data: ")
        assert fake.active == 1
    assert await fake.wait_disconnects(1) == 1
    assert fake.active == 0


async def test_script_order_and_default(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Reply(text="first"), Status(400))
    fake.default = Status(503)
    first = (await client.post(**chat_request(fake, "openai"))).json()
    assert first["choices"][0]["message"]["content"] == "first"
    assert (await client.post(**chat_request(fake, "openai"))).status_code == 400
    assert (await client.post(**chat_request(fake, "anthropic"))).status_code == 503
    assert (await client.post(**chat_request(fake, "anthropic"))).status_code == 503
    assert len(fake.requests) == 4


async def test_reset(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Status(500), Status(500))
    await client.post(**chat_request(fake, "openai"))
    fake.reset()
    assert fake.requests == []
    assert fake.default == Reply()
    assert (await client.post(**chat_request(fake, "openai"))).status_code == 200


async def test_azure_path(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    url = f"{fake.base}/openai/deployments/dep1/chat/completions?api-version=2024-10-21"
    resp = await client.post(url, json={"model": "dep1", "messages": MESSAGES})
    assert resp.json()["model"] == "dep1"
    assert fake.requests[0].query == {"api-version": "2024-10-21"}


async def test_api_key_and_lifecycle(client: httpx.AsyncClient) -> None:
    threads = threading.active_count()
    with FakeUpstream("beta", api_key="secret") as fake:
        args = chat_request(fake, "openai")
        assert (await client.post(**args)).status_code == 401
        ok = await client.post(**args, headers={"authorization": "Bearer secret"})
        assert ok.json()["choices"][0]["message"]["content"] == "hello from beta"
        url = fake.url
    assert threading.active_count() == threads
    with pytest.raises(httpx.ConnectError):
        await client.get(f"{url}/models")
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{unused_port()}/v1/models")
