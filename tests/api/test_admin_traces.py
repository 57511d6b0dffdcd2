"""The admin read API (`/admin/v1/traces`, `/traces/{id}`, `/usage`) on a real gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.api.test_openai_compat import MSG, oa
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream, Reply, Status

pytestmark = pytest.mark.integration

PRICE = {"input": 1000, "output": 2000}  # USD per million tokens: 10 in + 20 out = $0.05
TRACES = {"flush_interval": 0.05, "store_bodies": "full"}


def config(fake: FakeUpstream, **traces: Any) -> dict[str, Any]:
    return {
        "models": [{"name": "m", "deployments": [oa("a", fake, price=PRICE)]}],
        "router": {"retries": 0},
        "traces": {**TRACES, **traces},
    }


def wait_for(http: httpx.Client, count: int, params: dict[str, str] | None = None) -> list[Any]:
    """Poll the list until `count` traces are visible (the writer flushes in the background)."""
    deadline = time.monotonic() + 10
    while True:
        resp = http.get("/admin/v1/traces", params={"limit": "1000", **(params or {})})
        assert resp.status_code == 200, resp.text
        data: list[Any] = resp.json()["data"]
        if len(data) >= count or time.monotonic() > deadline:
            assert len(data) == count
            return data
        time.sleep(0.05)


def send_traffic(gw: GatewayServer, fake: FakeUpstream) -> None:
    """Six good answers (labelled), then one upstream failure."""
    with httpx.Client(base_url=gw.base, timeout=20) as http:
        for i in range(6):
            fake.script(Reply(usage=(10, 20)))
            headers = {"x-opsgate-metadata": orjson.dumps({"run": "r1", "i": str(i)}).decode()}
            if i < 2:
                headers["x-opsgate-session-id"] = "sess-1"
            body = {"model": "m", "messages": MSG, "user": f"user-{i % 3}"}
            resp = http.post("/v1/chat/completions", json=body, headers=headers)
            assert resp.status_code == 200, resp.text
        fake.script(Status(500))
        resp = http.post("/v1/chat/completions", json={"model": "m", "messages": MSG})
        assert resp.status_code >= 500


@pytest.fixture
def served(gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]) -> Iterator[httpx.Client]:
    """A gateway that has served seven requests, and an admin client for it."""
    gw = gateway(config(upstreams["alpha"]))
    send_traffic(gw, upstreams["alpha"])
    with httpx.Client(base_url=gw.base, timeout=20) as http:
        wait_for(http, 7)
        yield http


def ids(http: httpx.Client, **params: str) -> list[str]:
    resp = http.get("/admin/v1/traces", params=params)
    assert resp.status_code == 200, resp.text
    return [t["id"] for t in resp.json()["data"]]


def test_list_filters_and_pagination(served: httpx.Client) -> None:
    http = served
    everything = http.get("/admin/v1/traces").json()
    assert everything["object"] == "list" and everything["next_cursor"] is None
    traces = everything["data"]
    assert len(traces) == 7
    starts = [t["started_at"] for t in traces]
    assert starts == sorted(starts, reverse=True), "newest first"
    newest_ok = next(t for t in traces if t["status"] == "ok")
    assert newest_ok["object"] == "trace" and newest_ok["model_requested"] == "m"
    assert newest_ok["deployment"] == "a" and newest_ok["metadata"]["run"] == "r1"
    assert newest_ok["cost_micros"] == 50_000 and newest_ok["cost_usd"] == "0.050000"
    assert newest_ok["total_tokens"] == 30
    assert "request_body" not in newest_ok and "spans" not in newest_ok

    all_ids = [t["id"] for t in traces]
    assert len(ids(http, status="error")) == 1
    assert len(ids(http, status="ok")) == 6
    assert len(ids(http, model="m")) == 7 and ids(http, model="other") == []
    assert ids(http, deployment="a") == [t["id"] for t in traces if t["deployment"] == "a"]
    assert ids(http, metadata="i:3") == [t["id"] for t in traces if t["metadata"].get("i") == "3"]
    assert len(ids(http, metadata="run:r1")) == 6
    assert ids(http, metadata=["run:r1", "i:9"]) == []  # type: ignore[arg-type]
    assert len(ids(http, session_id="sess-1")) == 2
    assert len(ids(http, end_user="user-1")) == 2
    assert ids(http, key_id="nobody") == [] and ids(http, team_id="nobody") == []
    assert len(ids(http, since="1h")) == 7 and ids(http, until="1h") == []
    assert len(ids(http, since="2000-01-01T00:00:00Z", until="now")) == 7
    assert len(ids(http, min_duration_ms="0")) == 7 and ids(http, min_duration_ms="1e9") == []
    assert ids(http, cache="hit") == []

    seen: list[str] = []
    params = {"limit": "3"}
    for _ in range(5):
        page = http.get("/admin/v1/traces", params=params).json()
        seen.extend(t["id"] for t in page["data"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == all_ids, "three pages, no gaps, no duplicates"


def test_trace_detail_with_and_without_bodies(served: httpx.Client) -> None:
    http = served
    trace_id = ids(http, status="ok", limit="1")[0]
    detail = http.get(f"/admin/v1/traces/{trace_id}").json()
    assert detail["id"] == trace_id and detail["object"] == "trace"
    assert detail["has_request_body"] and detail["has_response_body"]
    assert "request_body" not in detail and "response_body" not in detail
    assert detail["spans"], "upstream attempts are spans"
    span = next(s for s in detail["spans"] if s["name"] == "upstream_attempt")
    assert span["object"] == "trace.span" and span["duration_ms"] >= 0
    assert span["attributes"]["deployment"] == "a"

    full = http.get(f"/admin/v1/traces/{trace_id}", params={"include_bodies": "true"}).json()
    assert full["request_body"]["encoding"] == "utf-8"
    assert orjson.loads(full["request_body"]["data"])["messages"] == MSG
    assert full["response_body"] == {"encoding": "utf-8", "data": "hello from alpha"}

    missing = http.get("/admin/v1/traces/no-such-trace")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "trace_not_found"


def test_usage_rollups(served: httpx.Client) -> None:
    http = served
    resp = http.get("/admin/v1/usage", params={"group_by": "model", "since": "1h"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list" and body["bucket"] == "none"
    assert body["next_cursor"] is None
    [row] = body["data"]
    assert row["group"] == {"model": "m"}
    assert row["bucket"] is None
    assert row["requests"] == 7 and row["errors"] == 1
    assert row["prompt_tokens"] == 60 and row["completion_tokens"] == 120
    assert row["cost_micros"] == 300_000 and row["cost_usd"] == "0.300000"
    assert 0 < row["latency_ms_p50"] <= row["latency_ms_p95"] <= row["latency_ms_p99"]
    assert row["cache_hit_rate"] == 0 and row["error_rate"] == pytest.approx(1 / 7, abs=1e-5)

    both = http.get("/admin/v1/usage", params={"group_by": "model,deployment"}).json()
    by_deployment = {r["group"]["deployment"]: r for r in both["data"]}
    assert by_deployment["a"]["group"] == {"model": "m", "deployment": "a"}
    assert by_deployment["a"]["requests"] >= 6
    assert sum(r["requests"] for r in both["data"]) == 7

    hourly = http.get("/admin/v1/usage", params={"group_by": "hour,status"}).json()
    assert hourly["bucket"] == "hour" and hourly["group_by"] == ["status"]
    per_status = {"error": 0, "ok": 0}
    for r in hourly["data"]:  # one hour, or two if the test straddled a boundary
        per_status[r["group"]["status"]] += r["requests"]
    assert per_status == {"error": 1, "ok": 6}
    assert all(r["bucket"].endswith(":00:00.000+00:00") for r in hourly["data"])
    same = http.get("/admin/v1/usage", params={"group_by": "status", "bucket": "hour"}).json()
    assert same["data"] == hourly["data"]

    by_user = http.get("/admin/v1/usage", params={"group_by": "user", "status": "ok"}).json()
    assert {r["group"]["end_user"]: r["requests"] for r in by_user["data"]} == {
        "user-0": 2,
        "user-1": 2,
        "user-2": 2,
    }
    by_key = http.get("/admin/v1/usage", params={"group_by": "key"}).json()
    [key_row] = by_key["data"]  # no key configured: every request is the anonymous principal
    assert list(key_row["group"]) == ["key_id"] and key_row["requests"] == 7
    old = http.get("/admin/v1/usage", params={"until": "2000-01-01"}).json()
    assert old["data"] == []


BAD = [
    ("/admin/v1/traces", {"cursor": "garbage!"}, "cursor"),
    ("/admin/v1/traces", {"cursor": "WzEsMl0"}, "cursor"),
    ("/admin/v1/traces", {"since": "yesterday"}, "since"),
    ("/admin/v1/traces", {"until": "2024-13-45"}, "until"),
    ("/admin/v1/traces", {"since": "1h", "until": "2h"}, "since"),
    ("/admin/v1/traces", {"limit": "0"}, "limit"),
    ("/admin/v1/traces", {"limit": "1001"}, "limit"),
    ("/admin/v1/traces", {"limit": "ten"}, "limit"),
    ("/admin/v1/traces", {"status": "weird"}, "status"),
    ("/admin/v1/traces", {"cache": "hot"}, "cache"),
    ("/admin/v1/traces", {"min_duration_ms": "nan"}, "min_duration_ms"),
    ("/admin/v1/traces", {"metadata": "no-colon"}, "metadata"),
    ("/admin/v1/traces", {"modle": "m"}, "modle"),
    ("/admin/v1/traces/x", {"include_bodies": "maybe"}, "include_bodies"),
    ("/admin/v1/usage", {"group_by": "planet"}, "group_by"),
    ("/admin/v1/usage", {"bucket": "week"}, "bucket"),
    ("/admin/v1/usage", {"bucket": "day", "group_by": "hour"}, "bucket"),
    ("/admin/v1/usage", {"bucket": "minute", "since": "1000w"}, "bucket"),
    ("/admin/v1/usage", {"since": "soon"}, "since"),
]


@pytest.mark.parametrize(("path", "params", "param"), BAD)
def test_bad_parameters_are_400(
    gateway: GatewayFactory,
    upstreams: dict[str, FakeUpstream],
    path: str,
    params: dict[str, str],
    param: str,
) -> None:
    gw = gateway(config(upstreams["alpha"]))
    resp = httpx.get(gw.base + path, params=params)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param


def test_master_key_is_required_when_set(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = gateway(config(upstreams["alpha"]), {"OPSGATE_MASTER_KEY": "sk-master"})
    for path in ("/admin/v1/traces", "/admin/v1/traces/x", "/admin/v1/usage"):
        assert httpx.get(gw.base + path).status_code == 401
        wrong = httpx.get(gw.base + path, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
    good = {"authorization": "Bearer sk-master"}
    assert httpx.get(gw.base + "/admin/v1/traces", headers=good).status_code == 200
    assert httpx.get(gw.base + "/admin/v1/usage", headers=good).status_code == 200
    assert httpx.get(gw.base + "/admin/v1/traces/x", headers=good).status_code == 404


def test_traces_disabled_is_503(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = gateway(config(upstreams["alpha"], enabled=False))
    resp = httpx.get(gw.base + "/admin/v1/traces")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "traces_disabled"
