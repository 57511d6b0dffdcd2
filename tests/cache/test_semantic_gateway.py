"""The semantic cache (hashing embedder) through a real gateway."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from opsgate.access.principal import Principal
from tests.cache.conftest import CachedGateway
from tests.cache.test_exact_gateway import chat_posts, trace
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration

SEMANTIC = {"semantic": {"enabled": True, "embedder": {"type": "hashing"}, "threshold": 0.75}}
KEYS = {
    "a1": Principal(key_id="a1", team_id="team-a"),
    "b1": Principal(key_id="b1", team_id="team-b"),
}


def ask(
    gw: GatewayServer, text: str, key: str = "a1", system: str | None = None, **extra: Any
) -> httpx.Response:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    body = {"model": "m", "messages": messages, "temperature": 0, **extra}
    with httpx.Client(base_url=gw.base, timeout=20) as http:
        resp = http.post(
            "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        )
    assert resp.status_code == 200, resp.text
    return resp


def result(resp: httpx.Response) -> str:
    return resp.headers["x-opsgate-cache"]


def test_a_rewording_hits_and_a_different_question_misses(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw, fake = cached(SEMANTIC, keys=KEYS), upstreams["alpha"]
    first = ask(gw, "How do I reset my password?")
    assert result(first) == "miss"
    again = ask(gw, "how do i reset my password")
    assert result(again) == "hit-semantic"
    assert again.json()["choices"] == first.json()["choices"]
    assert result(ask(gw, "How do I delete my account?")) == "miss"
    assert chat_posts(fake) == 2
    span = next(
        s
        for s in trace(gw, again.headers["x-opsgate-trace-id"])["spans"]
        if s["name"] == "cache_lookup"
    )
    assert 0.75 <= span["attributes"]["similarity"] <= 1.0
    assert span["attributes"]["tokens_saved"] > 0


def test_hits_only_within_tenant_and_context(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw, fake = cached(SEMANTIC, keys=KEYS), upstreams["alpha"]
    assert result(ask(gw, "How do I reset my password?", system="You are terse.")) == "miss"
    assert result(ask(gw, "how do i reset my password", key="b1", system="You are terse.")) == (
        "miss"
    ), "another team never gets this team's answer"
    assert result(ask(gw, "how do i reset my password", system="You are chatty.")) == "miss"
    assert result(ask(gw, "how do i reset my password", max_tokens=9, system="You are terse.")) == (
        "miss"
    ), "other parameters, other partition"
    assert result(ask(gw, "how do i reset my password!", system="You are terse.")) == (
        "hit-semantic"
    )
    assert chat_posts(fake) == 4


def test_threshold_per_team_and_no_cache(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    config = {**SEMANTIC, "teams": {"team-b": {"threshold": 0.999}}}
    gw = cached(config, keys=KEYS)
    ask(gw, "How do I reset my password?", key="b1")
    assert result(ask(gw, "How do I reset my password now?", key="b1")) == "miss"  # 0.80
    ask(gw, "How do I reset my password?", key="a1")
    assert result(ask(gw, "How do I reset my password now?", key="a1")) == "hit-semantic"
    with httpx.Client(base_url=gw.base, timeout=20) as http:
        resp = http.post(
            "/v1/chat/completions",
            json={"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": "Bearer a1", "x-opsgate-cache": "no-cache"},
        )
    assert result(resp) == "bypass"


def test_erasure_and_purge_reach_the_semantic_index(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = cached(SEMANTIC, keys=KEYS)
    ask(gw, "How do I reset my password?", user="alice")
    ask(gw, "What is the refund policy for annual plans?", user="bob")
    with httpx.Client(base_url=gw.base, timeout=20) as admin:
        stats = admin.get("/admin/v1/cache").json()
        assert stats["semantic"]["entries"] == 2
        assert stats["semantic"]["embedder"] == "hashing-v1-1024"
        erased = admin.post("/admin/v1/cache/erase", json={"end_user": "alice"}).json()
        assert erased == {"purged": {"exact": 1, "semantic": 1}}
    assert result(ask(gw, "how do i reset my password")) == "miss"
    assert result(ask(gw, "what is the refund policy for annual plans")) == "hit-semantic"
    with httpx.Client(base_url=gw.base, timeout=20) as admin:
        purged = admin.post("/admin/v1/cache/purge", json={"namespace": "team:team-a"}).json()
        assert purged["purged"]["semantic"] >= 1
        assert admin.get("/admin/v1/cache").json()["semantic"]["entries"] == 0
    assert result(ask(gw, "what is the refund policy for annual plans")) == "miss"


def test_an_expired_answer_is_not_served_semantically(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = cached(SEMANTIC, keys=KEYS)
    with httpx.Client(base_url=gw.base, timeout=20) as http:
        http.post(
            "/v1/chat/completions",
            json={
                "model": "m",
                "temperature": 0,
                "messages": [{"role": "user", "content": "How do I reset my password?"}],
            },
            headers={"authorization": "Bearer a1", "x-opsgate-cache": "ttl=0.3"},
        )
    time.sleep(0.5)
    assert result(ask(gw, "how do i reset my password")) == "miss"


def test_a_sensitive_question_is_not_embedded_by_a_public_deployment(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    """The `gateway` embedder routes through the gateway's own embeddings model; a request
    marked sensitive must not reach it when that deployment is public."""
    private, public = upstreams["alpha"], upstreams["beta"]

    def dep(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
        return {"provider": "openai", "base_url": fake.url, "model": "up", "api_key": "k", **extra}

    gw = gateway(
        {
            "models": [
                {"name": "m", "deployments": [dep(private, tags=["private"])]},
                {"name": "emb", "kind": "embedding", "deployments": [dep(public)]},
            ],
            "cache": {
                "semantic": {"enabled": True, "embedder": {"type": "gateway", "model": "emb"}}
            },
        }
    )

    def post(text: str, **headers: str) -> httpx.Response:
        body = {"model": "m", "messages": [{"role": "user", "content": text}], "temperature": 0}
        with httpx.Client(base_url=gw.base, timeout=20) as http:
            resp = http.post("/v1/chat/completions", json=body, headers=headers)
        assert resp.status_code == 200, resp.text
        return resp

    def embedded() -> str:
        return " ".join(str(r.body) for r in public.requests if r.path.endswith("/embeddings"))

    assert result(post("What is the capital of France?")) == "miss"
    assert "capital of France" in embedded(), "the setup embeds through the public deployment"
    sensitive = post("My HIV test result came back", **{"x-opsgate-sensitivity": "sensitive"})
    assert result(sensitive) == "miss"  # looked up (exact) and stored, not embedded
    assert "HIV" not in embedded()
    assert all("HIV" not in str(r.body) for r in public.requests)
