"""The gateway driven by the official `openai` SDK, against real fake-upstream HTTP servers."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream, Reply, ToolCall

pytestmark = pytest.mark.integration


def oa(name: str, fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "id": name,
        "base_url": fake.url,
        "model": "up-model",
        "api_key": "sk-up",
        **extra,
    }


def anth(name: str, fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "anthropic",
        "id": name,
        "base_url": fake.base,
        "model": "claude-up",
        "api_key": "ak-up",
        **extra,
    }


def one_model(*deps: dict[str, Any], **router: Any) -> dict[str, Any]:
    return {"models": [{"name": "m", "deployments": list(deps)}], "router": router}


MSG = [{"role": "user", "content": "say hello"}]


def test_sync_sdk_non_stream_and_stream(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = gateway(one_model(oa("a", upstreams["alpha"])))
    client = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MSG)
    resp = raw.parse()
    assert resp.choices[0].message.content == "hello from alpha"
    assert resp.usage is not None and resp.usage.prompt_tokens == 2
    assert raw.headers["x-opsgate-deployment"] == "a"
    assert raw.headers["x-opsgate-attempts"] == "1"
    assert len(raw.headers["x-opsgate-trace-id"]) == 32
    sent = upstreams["alpha"].requests[-1]
    assert sent.body["model"] == "up-model"
    assert sent.headers["authorization"] == "Bearer sk-up"

    chunks = list(client.chat.completions.create(model="m", messages=MSG, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello from alpha"
    assert all(c.usage is None for c in chunks), "usage chunk hidden unless asked for"
    assert upstreams["alpha"].requests[-1].body["stream_options"] == {"include_usage": True}


async def test_async_sdk_stream_with_usage(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = gateway(one_model(oa("a", upstreams["alpha"])))
    client = openai.AsyncOpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    stream = await client.chat.completions.create(
        model="m", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    resp = await client.chat.completions.create(model="m", messages=MSG)
    assert resp.choices[0].finish_reason == "stop"
    await client.close()


def test_unknown_fields_and_openai_params_pass_through(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = gateway(one_model(oa("a", upstreams["alpha"])))
    client = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    upstreams["alpha"].script(Reply(tool_call=ToolCall("get_weather", {"city": "Oslo"})))
    resp = client.chat.completions.create(
        model="m",
        messages=MSG,
        tools=tools,
        tool_choice="auto",
        n=2,
        stop=["\n"],
        response_format={"type": "text"},
        logprobs=True,
        top_logprobs=2,
        temperature=0,
        extra_body={"brand_new_field": {"x": [1, 2]}, "seed": 7},
    )
    assert resp.choices[0].message.tool_calls is not None
    assert resp.choices[0].message.tool_calls[0].function.name == "get_weather"
    body = upstreams["alpha"].requests[-1].body
    for key, value in {
        "brand_new_field": {"x": [1, 2]},
        "seed": 7,
        "n": 2,
        "stop": ["\n"],
        "logprobs": True,
        "top_logprobs": 2,
        "tool_choice": "auto",
        "tools": tools,
        "response_format": {"type": "text"},
    }.items():
        assert body[key] == value, key


def test_anthropic_dialect_through_openai_sdk(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = gateway(one_model(anth("c", upstreams["beta"])))
    client = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    msgs = [{"role": "system", "content": "be brief"}, *MSG]
    resp = client.chat.completions.create(model="m", messages=msgs, max_tokens=50)
    assert resp.choices[0].message.content == "hello from beta"
    sent = upstreams["beta"].requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body["system"] == "be brief" and sent.body["max_tokens"] == 50
    assert sent.headers["x-api-key"] == "ak-up"
    chunks = list(
        client.chat.completions.create(
            model="m", messages=msgs, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello from beta"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 4


def test_models_and_embeddings(gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]) -> None:
    cfg = one_model(oa("a", upstreams["alpha"]))
    cfg["models"].append(
        {"name": "emb", "kind": "embedding", "deployments": [oa("e", upstreams["alpha"])]}
    )
    gw = gateway(cfg)
    client = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    assert sorted(m.id for m in client.models.list()) == ["emb", "m"]
    emb = client.embeddings.create(model="emb", input=["one two", "three"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) > 0
    with pytest.raises(openai.BadRequestError, match="embedding model"):
        client.chat.completions.create(model="emb", messages=MSG)
