"""Per-model input schemas through a real gateway with the official SDK: a model that takes
JSON documents refuses one that breaks its schema with 400 `input_schema_violation` naming the
message and the JSON path, before the upstream is called; a `flag` model lets it through with
the verdict on the trace and in metrics; other models are not checked."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from opsgate.config.loader import ConfigError, parse_config
from tests.api.test_guard_pii import _close_clients, client  # noqa: F401
from tests.api.test_openai_compat import oa
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import wait_for_trace as trace
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration

ORDER = {
    "type": "object",
    "required": ["customer", "items"],
    "additionalProperties": False,
    "properties": {
        "customer": {"type": "string", "minLength": 1},
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            },
        },
    },
}


def config(fake: FakeUpstream) -> dict[str, Any]:
    return {
        "models": [
            {"name": "orders", "deployments": [oa("a", fake)]},
            {"name": "orders-lenient", "deployments": [oa("b", fake)]},
            {"name": "chat", "deployments": [oa("c", fake)]},
        ],
        "traces": {"flush_interval": 0.05},
        "guard": {
            "models": {
                "orders": {"input_schema": ORDER},
                "orders-lenient": {"input_schema": ORDER, "input_schema_action": "flag"},
            }
        },
    }


def user(doc: Any) -> list[dict[str, Any]]:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return [{"role": "system", "content": "Extract the order."}, {"role": "user", "content": text}]


GOOD = {"customer": "ACME", "items": [{"sku": "A-1", "qty": 2}]}


def test_schema_violations_are_blocked_with_the_failing_path(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = gateway(config(fake))
    sdk = client(gw)
    assert sdk.chat.completions.create(model="orders", messages=user(GOOD)).choices
    assert len(fake.requests) == 1
    cases = [
        ({**GOOD, "items": [{"sku": "A-1", "qty": 2}, {"sku": "B", "qty": 0}]}, "$.items[1].qty"),
        ({"items": GOOD["items"]}, "$"),  # a required property is missing
        ({**GOOD, "note": "rush"}, "$"),  # additionalProperties: false
        ("please send two A-1 to ACME", "$"),  # not JSON at all
    ]
    for doc, path in cases:
        with pytest.raises(openai.BadRequestError) as info:
            sdk.chat.completions.create(model="orders", messages=user(doc))
        error = info.value.body
        assert isinstance(error, dict)
        assert info.value.code == "input_schema_violation", error
        assert error["param"] == "messages[1].content"
        assert f"at {path}:" in error["message"] and "'orders'" in error["message"]
    assert len(fake.requests) == 1, "no refused request reached the upstream"
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="orders", messages=user({**GOOD, "items": []}))
    record = trace(gw, info.value.response.headers["x-opsgate-trace-id"])
    assert {"check": "schema", "stage": "input", "action": "block", "types": {"minItems": 1}} in (
        record["guard_verdicts"]
    )
    # streamed requests are checked before anything is sent
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="orders", messages=user("{}"), stream=True)
    # a model without a schema takes anything
    assert sdk.chat.completions.create(model="chat", messages=user("free text")).choices
    metrics = httpx.get(f"{gw.base}/metrics", timeout=20).text
    assert 'opsgate_guard_verdicts_total{action="block",check="schema",stage="input"} 6.0' in (
        metrics
    )


def test_a_flag_model_passes_violations_and_records_them(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = gateway(config(fake))
    raw = client(gw).chat.completions.with_raw_response.create(
        model="orders-lenient", messages=user({"customer": 7, "items": GOOD["items"]})
    )
    assert raw.parse().choices and len(fake.requests) == 1
    record = trace(gw, raw.headers["x-opsgate-trace-id"])
    assert record["guard_verdicts"] == [
        {"check": "schema", "stage": "input", "action": "flag", "types": {"type": 1}}
    ]
    ok = client(gw).chat.completions.with_raw_response.create(
        model="orders-lenient", messages=user(GOOD)
    )
    assert trace(gw, ok.headers["x-opsgate-trace-id"])["guard_verdicts"] == []


def test_a_broken_schema_is_a_config_error() -> None:
    bad = {"guard": {"models": {"orders": {"input_schema": {"type": "objekt"}}}}}
    with pytest.raises(ConfigError) as info:
        parse_config(bad, source="<test>", env={})
    assert "guard.models.orders.input_schema" in str(info.value)
    assert "not a valid JSON Schema" in str(info.value)


def test_guard_models_must_name_configured_models(upstreams: dict[str, FakeUpstream]) -> None:
    data = config(upstreams["alpha"])
    data["guard"]["models"]["ordres"] = {"input_schema": ORDER}
    with pytest.raises(ConfigError, match=r"guard\.models names unknown model 'ordres'"):
        parse_config(data, source="<test>", env={})
