"""Shared pieces of the experiment tests: a gateway config, the SDK, feedback and reads."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai

from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream

BASE = "/admin/v1/experiments"
METRICS = {"thumbs": {"type": "boolean"}, "rating": {"type": "float", "min": 0, "max": 1}}


def experiment(**changes: Any) -> dict[str, Any]:
    """A model experiment on `gpt-4o-mini`: control `a`, treatment `b` served by model `m2`."""
    spec: dict[str, Any] = {
        "name": "exp1",
        "traffic": {"model": "gpt-4o-mini"},
        "unit": "end_user",
        "variants": [{"name": "a"}, {"name": "b", "model": "m2"}],
        "metric": "thumbs",
        "min_units": 5,
    }
    return {**spec, **changes}


def start(
    gateway: GatewayFactory,
    alpha: FakeUpstream,
    beta: FakeUpstream,
    database_url: str | None = None,
    *,
    env: dict[str, str] | None = None,
    **extra: Any,
) -> GatewayServer:
    """Models `gpt-4o-mini` on `alpha` and `m2` on `beta`; feedback metrics declared."""

    def model(name: str, fake: FakeUpstream) -> dict[str, Any]:
        dep = {"provider": "openai", "id": name, "base_url": fake.url, "model": "up"}
        return {"name": name, "deployments": [{**dep, "api_key": "k"}]}

    config = {
        "models": [model("gpt-4o-mini", alpha), model("m2", beta)],
        "traces": {"flush_interval": 0.05},
        "feedback": {"metrics": METRICS, "flush_interval": 0.05},
        **extra,
    }
    env = {**(env or {}), **({"OPSGATE_DATABASE_URL": database_url} if database_url else {})}
    return gateway(config, env)


def sdk(gw: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)


def http(gw: GatewayServer) -> httpx.Client:
    return httpx.Client(base_url=gw.base, timeout=60)


def ask(client: openai.OpenAI, user: str, model: str = "gpt-4o-mini") -> tuple[str, str, str]:
    """One chat as end user `user`: (trace id, experiment header, variant header)."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], user=user
    )
    raw.parse()
    h = raw.headers
    return (
        h["x-opsgate-trace-id"],
        h.get("x-opsgate-experiment", ""),
        h.get("x-opsgate-variant", ""),
    )


def score(c: httpx.Client, trace_id: str, value: Any, metric: str = "thumbs") -> None:
    resp = c.post("/v1/feedback", json={"trace_id": trace_id, "metric": metric, "value": value})
    assert resp.status_code in (200, 201, 202), resp.text


def report_until(c: httpx.Client, name: str, ready: Any, *, within: float = 20.0) -> dict[str, Any]:
    """`GET /admin/v1/experiments/{name}` until `ready(report)` holds (traces and scores are
    written in the background)."""
    deadline = time.monotonic() + within
    while True:
        resp = c.get(f"{BASE}/{name}")
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        if ready(data) or time.monotonic() > deadline:
            return data
        time.sleep(0.1)


def variants(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in report["stats"]["variants"]}
