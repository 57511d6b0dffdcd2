"""Scripted upstream failures, seen from the outside through the official SDK."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from tests.api.test_openai_compat import MSG, anth, oa, one_model
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import (
    BreakStream,
    FakeUpstream,
    Hang,
    Reply,
    Status,
    unused_port,
)

pytestmark = pytest.mark.integration


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=20)


def test_500_is_retried_on_another_deployment(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a, b = upstreams["alpha"], upstreams["beta"]
    gw = gateway(one_model(oa("a", a, weight=1000), oa("b", b, weight=0.001), retries=2))
    a.script(Status(500))
    raw = client(gw.url).chat.completions.with_raw_response.create(model="m", messages=MSG)
    assert raw.parse().choices[0].message.content == "hello from beta"
    assert raw.headers["x-opsgate-attempts"] == "2"
    assert raw.headers["x-opsgate-deployment"] == "b"


def test_429_retry_after_is_honoured(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a = upstreams["alpha"]
    gw = gateway(one_model(oa("a", a), retries=1))
    a.script(Status(429, retry_after=1))
    t0 = time.monotonic()
    raw = client(gw.url).chat.completions.with_raw_response.create(model="m", messages=MSG)
    assert time.monotonic() - t0 >= 1.0, "waited for Retry-After before calling again"
    assert raw.headers["x-opsgate-attempts"] == "2"


def test_429_exhausted_reaches_client_with_retry_after(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a = upstreams["alpha"]
    gw = gateway(one_model(oa("a", a), retries=0))
    a.script(Status(429, retry_after=30))
    with pytest.raises(openai.RateLimitError) as info:
        client(gw.url).chat.completions.create(model="m", messages=MSG)
    assert info.value.response.headers["retry-after"] == "30"
    assert info.value.code == "rate_limit_exceeded"


def test_slow_upstream_times_out_then_falls_back(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a, b = upstreams["alpha"], upstreams["beta"]
    cfg = {
        "models": [
            {"name": "m", "deployments": [oa("a", a, timeout=0.5)]},
            {"name": "backup", "deployments": [anth("b", b)]},
        ],
        "router": {"retries": 0, "fallbacks": {"m": ["backup"]}},
    }
    gw = gateway(cfg)
    a.script(Hang(30))
    raw = client(gw.url).chat.completions.with_raw_response.create(model="m", messages=MSG)
    assert raw.parse().choices[0].message.content == "hello from beta"
    assert raw.headers["x-opsgate-deployment"] == "b"


def test_timeout_exhausted_is_504(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a = upstreams["alpha"]
    gw = gateway(one_model(oa("a", a, timeout=0.3), retries=0))
    a.script(Hang(30))
    with pytest.raises(openai.InternalServerError) as info:
        client(gw.url).chat.completions.create(model="m", messages=MSG)
    assert info.value.status_code == 504


def test_per_request_timeout_header(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a = upstreams["alpha"]
    gw = gateway(one_model(oa("a", a), retries=0))
    a.script(Hang(30))
    t0 = time.monotonic()
    with pytest.raises(openai.InternalServerError):
        client(gw.url).chat.completions.create(
            model="m", messages=MSG, extra_headers={"x-opsgate-timeout": "0.4"}
        )
    assert time.monotonic() - t0 < 10


def test_unreachable_host_falls_back_and_opens_circuit(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    b = upstreams["beta"]
    dead = {
        "provider": "openai",
        "id": "dead",
        "base_url": f"http://127.0.0.1:{unused_port()}/v1",
        "model": "x",
    }
    cfg = {
        "models": [
            {"name": "m", "deployments": [dead]},
            {"name": "backup", "deployments": [oa("b", b)]},
        ],
        "router": {
            "retries": 0,
            "fallbacks": {"m": ["backup"]},
            "circuit": {"failure_threshold": 2, "cooldown": 60},
        },
    }
    gw = gateway(cfg)
    c = client(gw.url)
    attempts = []
    for _ in range(4):
        raw = c.chat.completions.with_raw_response.create(model="m", messages=MSG)
        assert raw.headers["x-opsgate-deployment"] == "b"
        attempts.append(raw.headers["x-opsgate-attempts"])
    assert attempts == ["2", "2", "1", "1"], "after two failures the circuit skips `dead`"
    health = httpx.get(f"{gw.base}/admin/v1/deployments").json()["data"]
    assert {d["id"]: d["circuit"] for d in health}["dead"] == "open"


def test_unreachable_everything_is_503(gateway: GatewayFactory) -> None:
    dead = {"provider": "openai", "base_url": f"http://127.0.0.1:{unused_port()}/v1", "model": "x"}
    gw = gateway(one_model(dead, retries=1, backoff_base=0))
    with pytest.raises(openai.InternalServerError) as info:
        client(gw.url).chat.completions.create(model="m", messages=MSG)
    assert info.value.status_code == 503


def test_stream_broken_before_first_chunk_is_retried(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a = upstreams["alpha"]
    gw = gateway(one_model(oa("a", a), retries=1, backoff_base=0))
    a.script(BreakStream(after_chunks=0))
    chunks = list(client(gw.url).chat.completions.create(model="m", messages=MSG, stream=True))
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello from alpha"
    )
    assert len(a.requests) == 2


def test_stream_broken_midway_ends_with_error_event(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a = upstreams["alpha"]
    gw = gateway(one_model(oa("a", a), retries=2))
    a.script(BreakStream(after_chunks=2))
    with httpx.stream(
        "POST",
        f"{gw.url}/chat/completions",
        timeout=10,
        json={"model": "m", "messages": MSG, "stream": True},
    ) as resp:
        assert resp.status_code == 200
        events = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert '"error"' in events[-1] and "stream" in events[-1]
    assert "[DONE]" not in events[-1]
    assert len(a.requests) == 1, "never retried after chunks reached the client"
    with pytest.raises(openai.APIError):
        list(
            client(gw.url).chat.completions.create(model="m", messages=MSG, stream=True)
            if a.script(BreakStream(after_chunks=2)) is None
            else []
        )


async def test_client_disconnect_cancels_upstream(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a = upstreams["alpha"]
    gw = gateway(one_model(oa("a", a)))
    a.script(Reply(stream_chunks=200, chunk_delay=0.05))
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream(
            "POST",
            f"{gw.url}/chat/completions",
            json={"model": "m", "messages": MSG, "stream": True},
        ) as resp,
    ):
        async for _ in resp.aiter_lines():
            break
    assert await a.wait_disconnects(1, within=5) == 1
    await asyncio.sleep(0.1)
    async with httpx.AsyncClient() as http:
        deps = (await http.get(f"{gw.base}/admin/v1/deployments")).json()["data"]
    assert deps[0]["in_flight"] == 0


def test_stream_head_then_silence_falls_back(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a, b = upstreams["alpha"], upstreams["beta"]
    cfg = {
        "models": [
            {"name": "m", "deployments": [oa("a", a, timeout=0.5)]},
            {"name": "backup", "deployments": [oa("b", b)]},
        ],
        "router": {"retries": 0, "fallbacks": {"m": ["backup"]}},
    }
    gw = gateway(cfg)
    a.script(Hang(30, after_chunks=0))
    chunks = list(client(gw.url).chat.completions.create(model="m", messages=MSG, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello from beta"
