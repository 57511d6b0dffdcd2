"""Sensitivity routing through a real gateway: a request marked sensitive (by header, metadata
label or the PII it carries) only ever reaches a deployment tagged private; with none, 403."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.api.test_guard_pii import SSN, _close_clients, client, trace  # noqa: F401
from tests.api.test_openai_compat import oa
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration
MSG = [{"role": "user", "content": "summarise my medical file"}]
SENSITIVE = {"x-opsgate-sensitivity": "sensitive"}


def models(public: FakeUpstream, private: FakeUpstream) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": "mixed",
                "deployments": [oa("pub", public), oa("priv", private, tags=["on-prem"])],
            },
            {"name": "public-only", "deployments": [oa("pub2", public, tags=["eu"])]},
            {"name": "fallback-src", "deployments": [oa("pub3", public)]},
            {"name": "fallback-dst", "deployments": [oa("priv2", private, tags=["private"])]},
        ],
        "router": {"fallbacks": {"fallback-src": ["fallback-dst"]}},
        "traces": {"flush_interval": 0.05},
    }


def test_sensitive_header_only_reaches_private_deployments(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    public, private = upstreams["alpha"], upstreams["beta"]
    gw = gateway(models(public, private))
    sdk = client(gw)
    for _ in range(6):
        raw = sdk.chat.completions.with_raw_response.create(
            model="mixed", messages=MSG, extra_headers=SENSITIVE
        )
        assert raw.headers["x-opsgate-deployment"] == "priv"
    stream = sdk.chat.completions.create(
        model="mixed", messages=MSG, stream=True, extra_headers=SENSITIVE
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert public.requests == [], "the public deployment never saw a sensitive request"
    assert len(private.requests) == 7
    record = trace(gw, raw.headers["x-opsgate-trace-id"])
    assert record["guard_verdicts"] == [
        {"check": "sensitivity", "stage": "input", "action": "route", "types": {"header": 1}}
    ]


def test_no_private_deployment_is_a_403_and_nothing_is_sent(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    public, private = upstreams["alpha"], upstreams["beta"]
    gw = gateway(models(public, private))
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(gw).chat.completions.create(
            model="public-only", messages=MSG, extra_headers={"x-opsgate-sensitivity": "private"}
        )
    assert info.value.code == "no_private_deployment"
    assert "on-prem" in info.value.message and "private" in info.value.message
    with pytest.raises(openai.PermissionDeniedError):
        client(gw).chat.completions.create(
            model="public-only", messages=MSG, stream=True, extra_headers=SENSITIVE
        )
    assert public.requests == [] and private.requests == []
    plain = client(gw).chat.completions.create(model="public-only", messages=MSG)
    assert plain.choices[0].message.content == "hello from alpha"


def test_fallbacks_to_a_private_group_are_allowed(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    public, private = upstreams["alpha"], upstreams["beta"]
    gw = gateway(models(public, private))
    raw = client(gw).chat.completions.with_raw_response.create(
        model="fallback-src", messages=MSG, extra_headers=SENSITIVE
    )
    assert raw.headers["x-opsgate-deployment"] == "priv2"
    assert public.requests == []


def test_metadata_label_and_pii_types_mark_a_request_sensitive(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    public, private = upstreams["alpha"], upstreams["beta"]
    config = {**models(public, private), "guard": {"default": {"sensitive_types": ["US_SSN"]}}}
    gw = gateway(config)
    sdk = client(gw)
    labelled = sdk.chat.completions.with_raw_response.create(
        model="mixed", messages=MSG, metadata={"sensitivity": "sensitive"}
    )
    assert labelled.headers["x-opsgate-deployment"] == "priv"
    ssn = [{"role": "user", "content": f"my SSN is {SSN}"}]
    for _ in range(4):
        raw = sdk.chat.completions.with_raw_response.create(model="mixed", messages=ssn)
        assert raw.headers["x-opsgate-deployment"] == "priv"
    assert public.requests == []
    record = trace(gw, raw.headers["x-opsgate-trace-id"])
    assert record["guard_verdicts"][0]["types"] == {"US_SSN": 1}
    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model="public-only", messages=ssn)
    assert public.requests == []


def test_bad_sensitivity_header_is_a_400(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    public, private = upstreams["alpha"], upstreams["beta"]
    gw = gateway(models(public, private))
    resp = httpx.post(
        f"{gw.url}/chat/completions",
        json={"model": "mixed", "messages": MSG},
        headers={"x-opsgate-sensitivity": "top-secret"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "x-opsgate-sensitivity"
    assert public.requests == [] and private.requests == []


def test_sensitive_embeddings_only_reach_private_deployments(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    public, private = upstreams["alpha"], upstreams["beta"]
    config = models(public, private)
    config["models"] += [
        {
            "name": "emb",
            "kind": "embedding",
            "deployments": [oa("e-pub", public), oa("e-priv", private, tags=["private"])],
        },
        {"name": "emb-pub", "kind": "embedding", "deployments": [oa("e-pub2", public)]},
    ]
    gw = gateway(config)
    sdk = client(gw)
    for _ in range(4):
        raw = sdk.embeddings.with_raw_response.create(
            model="emb", input="x", extra_headers=SENSITIVE
        )
        assert raw.headers["x-opsgate-deployment"] == "e-priv"
    with pytest.raises(openai.PermissionDeniedError) as info:
        sdk.embeddings.create(model="emb-pub", input="x", extra_headers=SENSITIVE)
    assert info.value.code == "no_private_deployment"
    assert public.requests == []
