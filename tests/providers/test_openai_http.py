"""OpenAIProvider (and its Azure variant) against a real HTTP fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from opsgate.chat import ChatChunk, ChatRequest, EmbeddingRequest, Usage
from opsgate.config.schema import DeploymentConfig
from opsgate.providers.base import CallContext
from opsgate.providers.errors import (
    StreamBrokenError,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from opsgate.providers.openai import AzureOpenAIProvider, OpenAIProvider
from opsgate.providers.transport import HTTPClient
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

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "say hello please"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream("upstream-a") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeUpstream) -> FakeUpstream:
    server.reset()
    return server


@pytest.fixture
async def http() -> AsyncIterator[HTTPClient]:
    client = HTTPClient()
    yield client
    await client.aclose()


def make(http: HTTPClient, base_url: str, **settings: Any) -> OpenAIProvider:
    settings = {"api_key": "k", **settings}
    deployment = DeploymentConfig(
        provider="openai", model="up-model", base_url=base_url, **settings
    )
    return OpenAIProvider(deployment, http)


def ctx(timeout: float = 5.0, idle: float = 5.0) -> CallContext:
    return CallContext(trace_id="trace-1", timeout=timeout, stream_idle_timeout=idle)


def chat(stream: bool = False, **params: Any) -> ChatRequest:
    return ChatRequest(model="public-name", messages=MESSAGES, stream=stream, params=params)


async def collect(provider: OpenAIProvider, req: ChatRequest, c: CallContext) -> list[ChatChunk]:
    return [chunk async for chunk in provider.stream(req, c)]


async def call(provider: OpenAIProvider, stream: bool, c: CallContext) -> object:
    """One chat call, streamed (all chunks) or not."""
    if stream:
        return await collect(provider, chat(stream=True), c)
    return await provider.complete(chat(), c)


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(
        (choice.get("delta") or {}).get("content") or ""
        for chunk in chunks
        for choice in chunk.body.get("choices") or ()
    )


async def test_complete(fake: FakeUpstream, http: HTTPClient) -> None:
    resp = await make(http, fake.url).complete(chat(), ctx())
    assert resp.body["choices"][0]["message"]["content"] == "hello from upstream-a"
    assert resp.body["model"] == "up-model"
    assert resp.usage == Usage(prompt_tokens=3, completion_tokens=3)
    assert resp.finish_reasons == ["stop"]
    [rec] = fake.requests
    assert rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == "Bearer k"
    assert rec.headers["content-type"] == "application/json"
    assert rec.body == {"model": "up-model", "messages": MESSAGES}


async def test_headers_from_deployment_and_context(fake: FakeUpstream, http: HTTPClient) -> None:
    provider = make(http, fake.url, headers={"x-team": "blue"})
    c = ctx()
    c.extra_headers["x-trace"] = "abc"
    await provider.complete(chat(), c)
    headers = fake.requests[0].headers
    assert (headers["x-team"], headers["x-trace"]) == ("blue", "abc")


async def test_unknown_fields_pass_through(fake: FakeUpstream, http: HTTPClient) -> None:
    params: dict[str, Any] = {
        "temperature": 0.3,
        "logit_bias": {"50256": -100},
        "brand_new_feature": {"nested": [1, "two", None], "flag": True},
        "stream_options": {"include_obfuscation": False},
    }
    await make(http, fake.url).complete(chat(**params), ctx())
    assert fake.requests[0].body == {"model": "up-model", "messages": MESSAGES, **params}


async def test_stream_with_usage(fake: FakeUpstream, http: HTTPClient) -> None:
    fake.script(Reply(text="one two three four five"))
    chunks = await collect(make(http, fake.url), chat(stream=True, n=1), ctx())
    assert text_of(chunks) == "one two three four five"
    assert chunks[-1].is_usage_only
    assert chunks[-1].usage == Usage(prompt_tokens=3, completion_tokens=5)
    assert not any(c.is_usage_only for c in chunks[:-1])
    assert {c.body["model"] for c in chunks} == {"up-model"}
    body = fake.requests[0].body
    assert (body["stream"], body["stream_options"], body["n"]) == (
        True,
        {"include_usage": True},
        1,
    )


async def test_stream_usage_can_be_turned_off(fake: FakeUpstream, http: HTTPClient) -> None:
    provider = make(http, fake.url, options={"stream_usage": False})
    chunks = await collect(provider, chat(stream=True), ctx())
    assert text_of(chunks) == "hello from upstream-a"
    assert not any(c.is_usage_only for c in chunks)
    assert "stream_options" not in fake.requests[0].body


async def test_stream_tool_call(fake: FakeUpstream, http: HTTPClient) -> None:
    fake.script(Reply(text="", tool_call=ToolCall("get_weather", {"city": "Oslo"})))
    chunks = await collect(make(http, fake.url), chat(stream=True), ctx())
    calls = [
        call
        for chunk in chunks
        for choice in chunk.body.get("choices") or ()
        for call in choice["delta"].get("tool_calls") or ()
    ]
    assert calls[0]["function"]["name"] == "get_weather"
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Oslo"}'
    assert [r for c in chunks for r in (ch["finish_reason"] for ch in c.body["choices"]) if r] == [
        "tool_calls"
    ]


async def test_embeddings(fake: FakeUpstream, http: HTTPClient) -> None:
    req = EmbeddingRequest(model="public-embed", input=["alpha beta", "gamma"])
    result = await make(http, fake.url).embed(req, ctx())
    assert [d["embedding"] for d in result["data"]] == [
        embedding_for("alpha beta"),
        embedding_for("gamma"),
    ]
    assert result["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    rec = fake.requests[0]
    assert (rec.path, rec.body) == ("/v1/embeddings", {"model": "up-model", "input": req.input})


@pytest.mark.parametrize("stream", [False, True])
async def test_500_is_retryable(fake: FakeUpstream, http: HTTPClient, stream: bool) -> None:
    fake.script(Status(500, message="kaboom"))
    provider = make(http, fake.url)
    with pytest.raises(UpstreamStatusError) as info:
        await call(provider, stream, ctx())
    err = info.value
    assert (err.upstream_status, err.retryable, err.status, err.kind) == (
        500,
        True,
        502,
        "status_500",
    )
    assert "kaboom" in err.message


async def test_400_is_not_retryable(fake: FakeUpstream, http: HTTPClient) -> None:
    fake.script(Status(400, message="messages: too long"))
    with pytest.raises(UpstreamStatusError) as info:
        await make(http, fake.url).complete(chat(), ctx())
    err = info.value
    assert (err.upstream_status, err.retryable, err.status) == (400, False, 400)
    assert err.type == "invalid_request_error"
    assert "messages: too long" in err.message


@pytest.mark.parametrize(
    ("step", "seconds"),
    [
        (Status(429, retry_after=3), 3.0),
        (Status(429, headers={"retry-after-ms": "1500", "retry-after": "2"}), 1.5),
        (Status(429), None),
    ],
)
async def test_429_retry_after(
    fake: FakeUpstream, http: HTTPClient, step: Status, seconds: float | None
) -> None:
    fake.script(step)
    with pytest.raises(UpstreamStatusError) as info:
        await make(http, fake.url).complete(chat(), ctx())
    err = info.value
    assert (err.status, err.retryable, err.retry_after) == (429, True, seconds)
    assert err.headers.get("retry-after") == (None if seconds is None else str(round(seconds)))


async def test_embeddings_error_status(fake: FakeUpstream, http: HTTPClient) -> None:
    fake.script(Status(503))
    with pytest.raises(UpstreamStatusError) as info:
        await make(http, fake.url).embed(EmbeddingRequest(model="e", input="x"), ctx())
    assert info.value.upstream_status == 503


@pytest.mark.parametrize(
    ("stream", "step"),
    [(False, Hang(30)), (True, Hang(30)), (False, Hang(30, after_chunks=0))],
    ids=["complete", "stream", "complete-head-then-stall"],
)
async def test_hang_times_out(
    fake: FakeUpstream, http: HTTPClient, stream: bool, step: Hang
) -> None:
    fake.script(step)
    provider = make(http, fake.url)
    with pytest.raises(UpstreamTimeoutError) as info:
        await call(provider, stream, ctx(timeout=0.2))
    assert (info.value.status, info.value.retryable) == (504, True)
    assert await fake.wait_disconnects(1) == 1


async def test_stalled_stream_hits_idle_timeout(fake: FakeUpstream, http: HTTPClient) -> None:
    fake.script(SlowStream(chunk_delay=5.0))
    with pytest.raises(UpstreamTimeoutError, match="stalled"):
        await collect(make(http, fake.url), chat(stream=True), ctx(idle=0.2))
    assert await fake.wait_disconnects(1) == 1


async def test_broken_stream(fake: FakeUpstream, http: HTTPClient) -> None:
    fake.script(BreakStream(after_chunks=2))
    got: list[ChatChunk] = []

    async def consume() -> None:
        async for chunk in make(http, fake.url).stream(chat(stream=True), ctx()):
            got.append(chunk)  # the chunks before the break are what a client already has

    with pytest.raises(StreamBrokenError):
        await consume()
    assert text_of(got) == "hello"


async def test_broken_json_body(fake: FakeUpstream, http: HTTPClient) -> None:
    fake.script(BreakStream(after_chunks=1))
    with pytest.raises(StreamBrokenError) as info:
        await make(http, fake.url).complete(chat(), ctx())
    assert (info.value.retryable, info.value.status, info.value.kind) == (
        True,
        502,
        "stream_broken",
    )


async def test_in_band_stream_error(fake: FakeUpstream, http: HTTPClient) -> None:
    fake.script(StreamError(after_chunks=2, message="overloaded"))
    with pytest.raises(StreamBrokenError, match="overloaded"):
        await collect(make(http, fake.url), chat(stream=True), ctx())


@pytest.mark.parametrize("stream", [False, True])
async def test_dead_port(http: HTTPClient, stream: bool) -> None:
    provider = make(http, f"http://127.0.0.1:{unused_port()}/v1")
    with pytest.raises(UpstreamConnectionError) as info:
        await call(provider, stream, ctx())
    assert (info.value.status, info.value.retryable, info.value.kind) == (503, True, "connect")


@pytest.mark.parametrize("stream", [False, True])
async def test_garbage(fake: FakeUpstream, http: HTTPClient, stream: bool) -> None:
    fake.script(Garbage())
    provider = make(http, fake.url)
    with pytest.raises(UpstreamProtocolError):
        await call(provider, stream, ctx())


async def test_consumer_leaving_closes_upstream(fake: FakeUpstream, http: HTTPClient) -> None:
    fake.script(Reply(stream_chunks=50, chunk_delay=0.05))
    stream = make(http, fake.url).stream(chat(stream=True), ctx())
    first = await anext(stream)
    assert first.body["choices"][0]["delta"]["role"] == "assistant"
    await stream.aclose()  # type: ignore[attr-defined]
    assert await fake.wait_disconnects(1) == 1
    assert fake.active == 0


async def test_azure_url_and_header(fake: FakeUpstream, http: HTTPClient) -> None:
    deployment = DeploymentConfig(
        provider="azure", model="dep-1", base_url=fake.base, api_key="az", api_version="2024-06-01"
    )
    provider = AzureOpenAIProvider(deployment, http)
    assert AzureOpenAIProvider.check(deployment) == []
    resp = await provider.complete(chat(), ctx())
    assert resp.body["model"] == "dep-1"
    await provider.embed(EmbeddingRequest(model="e", input="x"), ctx())
    chat_rec, embed_rec = fake.requests
    assert chat_rec.path == "/openai/deployments/dep-1/chat/completions"
    assert embed_rec.path == "/openai/deployments/dep-1/embeddings"
    for rec in (chat_rec, embed_rec):
        assert rec.query == {"api-version": "2024-06-01"}
        assert rec.headers["api-key"] == "az"
        assert "authorization" not in rec.headers


async def test_api_key_checked_by_upstream(http: HTTPClient) -> None:
    with FakeUpstream("locked", api_key="right") as fake:
        with pytest.raises(UpstreamStatusError) as info:
            await make(http, fake.url).complete(chat(), ctx())
        assert (info.value.upstream_status, info.value.retryable) == (401, False)
        ok = await make(http, fake.url, api_key="right").complete(chat(), ctx())
        assert ok.body["choices"][0]["message"]["content"] == "hello from locked"
