"""Rate limits and budgets seen from the outside: the official SDK against a real gateway."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.api.test_openai_compat import MSG, oa, one_model
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration
MASTER = "og-master-test"


def new_key(base: str, **body: Any) -> str:
    resp = httpx.post(
        f"{base}/admin/v1/keys", json=body, headers={"authorization": f"Bearer {MASTER}"}
    )
    assert resp.status_code in (200, 201), resp.text
    secret: str = resp.json()["key"]
    return secret


def test_rpm_limit_gives_429_with_headers(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = gateway(one_model(oa("a", upstreams["alpha"])), {"OPSGATE_MASTER_KEY": MASTER})
    key = new_key(gw.base, role="service", limits={"rpm": 2})
    client = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)
    first = client.chat.completions.with_raw_response.create(model="m", messages=MSG)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    client.chat.completions.create(model="m", messages=MSG)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=MSG)
    err = info.value
    assert int(err.response.headers["retry-after"]) >= 1
    assert err.body is not None
    assert "rpm" in str(err.body.get("param", "")) + err.message  # names the limit hit
    assert len(upstreams["alpha"].requests) == 2, "the refused request never reached upstream"


def test_budget_refuses_then_cuts_a_stream(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a = upstreams["alpha"]
    dep = oa("a", a, price={"input": 10000, "output": 10000})  # $0.01 a token
    gw = gateway(one_model(dep), {"OPSGATE_MASTER_KEY": MASTER})
    key = new_key(gw.base, role="service", budget={"max_usd": "0.3", "period": "daily"})
    client = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)
    a.script(Reply(text=" ".join(["word"] * 60), stream_chunks=60))
    with httpx.stream(
        "POST",
        f"{gw.url}/chat/completions",
        timeout=20,
        headers={"authorization": f"Bearer {key}"},
        json={"model": "m", "messages": MSG, "stream": True},
    ) as resp:
        assert resp.status_code == 200
        events = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert "budget" in events[-1], events[-1]
    assert "[DONE]" not in events[-1]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=MSG, max_tokens=5)
    assert info.value.code == "budget_exceeded"


def test_a_request_that_can_never_fit_its_budget_is_a_400_not_a_429(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    """max_tokens 1e9 on a $1 budget: the worst case is more than the whole period allows, so
    the SDK must not be told to retry (429 + Retry-After); a request that fits still runs."""
    a = upstreams["alpha"]
    dep = oa("a", a, price={"input": 1, "output": 1})  # $1 per million tokens
    gw = gateway(one_model(dep), {"OPSGATE_MASTER_KEY": MASTER})
    key = new_key(gw.base, role="service", budget={"max_usd": "1", "period": "monthly"})
    client = openai.OpenAI(base_url=gw.url, api_key=key)  # default retries: 2
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=MSG, max_tokens=1_000_000_000)
    err = info.value
    assert err.status_code == 400 and err.code == "budget_too_small"
    assert "retry-after" not in err.response.headers
    assert err.body is not None and err.body.get("param") == "max_tokens"
    assert "can never be admitted" in err.message and "monthly budget of key" in err.message
    assert "$1000" in err.message and "$1)" in err.message, err.message
    assert len(a.requests) == 0
    assert client.chat.completions.create(model="m", messages=MSG, max_tokens=50).choices


def test_a_stream_whose_prompt_alone_exceeds_the_budget_is_a_400(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    a = upstreams["alpha"]
    dep = oa("a", a, price={"input": 10000, "output": 10000})  # $0.01 a token
    gw = gateway(one_model(dep), {"OPSGATE_MASTER_KEY": MASTER})
    key = new_key(gw.base, role="service", budget={"max_usd": "0.001", "period": "daily"})
    client = openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=MSG, stream=True)
    assert info.value.code == "budget_too_small"
    assert "needs at least" in info.value.message and "to start" in info.value.message
    assert len(a.requests) == 0
