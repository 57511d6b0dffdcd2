"""Bad input gets the right status and a clear OpenAI-shaped error, and the gateway stays up."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_openai_compat import MSG, oa, one_model
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration


@pytest.fixture
def gw_url(gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]) -> str:
    return gateway(one_model(oa("a", upstreams["alpha"]))).base


def post(base: str, body: Any = None, *, content: bytes | None = None, **kw: Any) -> httpx.Response:
    if content is None and body is not None:
        return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30, **kw)
    return httpx.post(f"{base}/v1/chat/completions", content=content or b"", timeout=30, **kw)


def check_error(resp: httpx.Response, status: int, code: str, param: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "code", "param"}
    assert err["code"] == code, err
    assert err["message"]
    if param is not None:
        assert err["param"] == param
    assert resp.headers["x-opsgate-trace-id"]
    assert "Traceback" not in resp.text


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"messages": MSG}, 400, "missing_required_parameter", "model"),
        ({"model": "m"}, 400, "missing_required_parameter", "messages"),
        ({"model": "m", "messages": []}, 400, "invalid_value", "messages"),
        ({"model": "m", "messages": "hi"}, 400, "invalid_type", "messages"),
        (
            {"model": "m", "messages": [{"role": "robot", "content": "x"}]},
            400,
            "invalid_value",
            "messages[0].role",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": 5}]},
            400,
            "invalid_type",
            "messages[0].content",
        ),
        ({"model": 42, "messages": MSG}, 400, "invalid_type", "model"),
        ({"model": "m", "messages": MSG, "temperature": "hot"}, 400, "invalid_type", "temperature"),
        ({"model": "m", "messages": MSG, "temperature": 3}, 400, "invalid_value", "temperature"),
        ({"model": "m", "messages": MSG, "max_tokens": 0}, 400, "invalid_value", "max_tokens"),
        ({"model": "m", "messages": MSG, "max_tokens": 2**31}, 400, "invalid_value", "max_tokens"),
        ({"model": "m", "messages": MSG, "n": True}, 400, "invalid_type", "n"),
        ({"model": "m", "messages": MSG, "stream": "yes"}, 400, "invalid_type", "stream"),
        ({"model": "m", "messages": MSG, "stop": [1]}, 400, "invalid_type", "stop"),
        ({"model": "m", "messages": MSG, "tools": {}}, 400, "invalid_type", "tools"),
        ({"model": "nope", "messages": MSG}, 404, "model_not_found", "model"),
        ({"model": "nope", "messages": MSG, "stream": True}, 404, "model_not_found", "model"),
    ],
)
def test_invalid_requests(gw_url: str, body: Any, status: int, code: str, param: str) -> None:
    check_error(post(gw_url, body), status, code, param)


def test_malformed_and_non_object_json(gw_url: str) -> None:
    check_error(post(gw_url, content=b'{"model": "m", "messages": ['), 400, "invalid_json")
    check_error(post(gw_url, content=b"[1, 2]"), 400, "invalid_json")
    check_error(post(gw_url, content=b""), 400, "invalid_json")
    check_error(post(gw_url, content=b"\xff\xfe not utf8"), 400, "invalid_json")


def test_twenty_megabyte_body_is_413(gw_url: str) -> None:
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * (20 * 1024 * 1024)}]}
    check_error(post(gw_url, big), 413, "payload_too_large")


def test_oversized_chunked_body_without_length_is_413(gw_url: str) -> None:
    def chunks() -> Any:
        for _ in range(25):
            yield b"x" * (1024 * 1024)

    resp = httpx.post(f"{gw_url}/v1/chat/completions", content=chunks(), timeout=30)
    check_error(resp, 413, "payload_too_large")


def test_bad_timeout_header(gw_url: str) -> None:
    resp = post(gw_url, {"model": "m", "messages": MSG}, headers={"x-opsgate-timeout": "soon"})
    check_error(resp, 400, "invalid_header", "x-opsgate-timeout")


def test_unknown_path_and_method(gw_url: str) -> None:
    check_error(httpx.get(f"{gw_url}/v1/nothing"), 404, "unknown_url")
    check_error(httpx.get(f"{gw_url}/v1/chat/completions"), 405, "method_not_allowed")


def test_gateway_stays_up_after_bad_input(gw_url: str) -> None:
    post(gw_url, content=b"{")
    post(
        gw_url, {"model": "m", "messages": [{"role": "user", "content": "x" * (11 * 1024 * 1024)}]}
    )
    ok = post(gw_url, {"model": "m", "messages": MSG})
    assert ok.status_code == 200
    assert httpx.get(f"{gw_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gw_url}/readyz").status_code == 200


def test_upstream_client_error_passes_through(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    from tests.fixtures.upstream import Status

    a = upstreams["alpha"]
    gw = gateway(one_model(oa("a", a)))
    a.script(Status(400, message="context too long"))
    resp = post(gw.base, {"model": "m", "messages": MSG})
    check_error(resp, 400, "upstream_400")
    assert "context too long" in resp.json()["error"]["message"]
    assert len(a.requests) == 1


def test_upstream_rejecting_our_key_is_502_not_401(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    from tests.fixtures.upstream import Status

    a = upstreams["alpha"]
    gw = gateway(one_model(oa("a", a), retries=0))
    a.script(Status(401, message="bad key"))
    check_error(post(gw.base, {"model": "m", "messages": MSG}), 502, "upstream_401")


def test_master_key_required_when_set(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    cfg = one_model(oa("a", upstreams["alpha"]))
    gw = gateway(cfg, {"OPSGATE_MASTER_KEY": "og-master"})
    body = {"model": "m", "messages": MSG}
    check_error(post(gw.base, body), 401, "missing_api_key")
    check_error(
        post(gw.base, body, headers={"authorization": "Bearer nope"}), 401, "invalid_api_key"
    )
    check_error(httpx.get(f"{gw.base}/v1/models"), 401, "missing_api_key")
    ok = post(gw.base, body, headers={"authorization": "Bearer og-master"})
    assert ok.status_code == 200
    assert upstreams["alpha"].requests[-1].headers["authorization"] == "Bearer sk-up", (
        "the caller's key never reaches the upstream"
    )
    denied = httpx.post(f"{gw.base}/admin/v1/config/reload")
    check_error(denied, 401, "missing_api_key")


@pytest.mark.parametrize(
    ("value", "shown"), [(1e30, "1e+30"), (100.5, "100.5"), (2**40, "1,099,511,627,776")]
)
def test_a_count_out_of_range_says_the_range(gw_url: str, value: float, shown: str) -> None:
    """`max_tokens: 1e30` used to say only "expected an integer, but got float"."""
    resp = post(gw_url, {"model": "m", "messages": MSG, "max_tokens": value})
    check_error(resp, 400, "invalid_type" if isinstance(value, float) else "invalid_value")
    message = resp.json()["error"]["message"]
    assert "an integer from 1 to 2,147,483,647" in message and shown in message, message
