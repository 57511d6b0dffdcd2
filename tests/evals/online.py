"""Shared pieces of the online-evaluation tests: a gateway config with online rules, a started
gateway with an in-memory span exporter, and waits on its background scorer."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opsgate.evals.online import OnlineEvaluator
from opsgate.telemetry.otel import create_tracer
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.upstream import FakeUpstream

CONTEXT = "The Eiffel Tower is in Paris. It was finished in 1889 and is 330 metres tall."
QUESTION = "When was the Eiffel Tower finished?"
SUPPORTED = "The Eiffel Tower was finished in 1889."
MESSAGES = [{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}]
METRICS = {
    "hallucination": {"type": "boolean", "optimize": "min"},
    "faithfulness": {"type": "float", "min": 0, "max": 1},
    "relevance": {"type": "float"},
}
JUDGE_ANSWER = '{"reasoning": "grounded in the context", "score": 5}'


def deployment(fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "base_url": fake.url, "model": "up", "api_key": "sk", **extra}


def online_config(
    upstreams: dict[str, FakeUpstream],
    rules: list[dict[str, Any]],
    *,
    judge_price: dict[str, float] | None = None,
    **evals: Any,
) -> dict[str, Any]:
    judge = deployment(upstreams["beta"], **({"price": judge_price} if judge_price else {}))
    return {
        "models": [
            {"name": "support-bot", "deployments": [deployment(upstreams["alpha"])]},
            {"name": "other-bot", "deployments": [deployment(upstreams["alpha"])]},
            {"name": "judge", "deployments": [judge]},
        ],
        "router": {"retries": 0},
        "traces": {"flush_interval": 0.05},
        "feedback": {"metrics": METRICS, "flush_interval": 0.05, "trace_wait": 0.3},
        "evals": {"online": rules, "judge_model": "judge", **evals},
    }


@dataclass
class Online:
    server: GatewayServer
    spans: InMemorySpanExporter

    @property
    def evaluator(self) -> OnlineEvaluator:
        online: OnlineEvaluator = self.server.gateway.online
        return online

    def chat(self, http: httpx.Client, model: str = "support-bot", **body: Any) -> str:
        resp = http.post(
            "/v1/chat/completions", json={"model": model, "messages": MESSAGES, **body}
        )
        assert resp.status_code == 200, resp.text
        return resp.headers["x-opsgate-trace-id"]

    def settle(self, within: float = 30.0) -> None:
        """Wait until every queued answer is scored (the background workers are idle)."""
        deadline = time.monotonic() + within
        stats = self.evaluator.stats
        while stats.scored < stats.queued or self.evaluator.depth:
            assert time.monotonic() < deadline, f"online scoring still busy: {stats}"
            time.sleep(0.05)

    def scores(self, metric: str, expect: int, within: float = 20.0) -> list[dict[str, Any]]:
        """The stored online scores of `metric`, once there are `expect` of them."""
        deadline = time.monotonic() + within
        while True:
            resp = httpx.get(
                f"{self.server.base}/admin/v1/feedback",
                params={"metric": metric, "source": "online", "limit": "1000"},
                timeout=30,
            )
            assert resp.status_code == 200, resp.text
            data: list[dict[str, Any]] = resp.json()["data"]
            if len(data) >= expect or time.monotonic() > deadline:
                return data
            time.sleep(0.05)

    def metrics(self) -> str:
        return httpx.get(f"{self.server.base}/metrics", timeout=30).text


OnlineStarter = Callable[..., Online]


@pytest.fixture
def online_gateway(tmp_path: Path, upstreams: dict[str, FakeUpstream]) -> Iterator[OnlineStarter]:
    started: list[GatewayServer] = []

    def start(rules: list[dict[str, Any]], **options: Any) -> Online:
        data = online_config(upstreams, rules, **options)
        env = {"OPSGATE_DATABASE_URL": f"sqlite:///{tmp_path}/online{len(started)}.db"}
        spans = InMemorySpanExporter()
        server = GatewayServer(make_config(data, env), tracer=create_tracer(exporter=spans))
        server.start()
        started.append(server)
        return Online(server, spans)

    yield start
    for server in started:
        server.stop()


def binomial_interval(n: int, p: float, tail: float = 1e-4) -> tuple[int, int]:
    """The smallest and largest counts whose two tails each hold at most `tail` of
    Binomial(n, p): a count outside happens with probability under 2 * tail."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    low, acc = 0, 0.0
    while acc + pmf[low] <= tail:
        acc += pmf[low]
        low += 1
    high, acc = n, 0.0
    while acc + pmf[high] <= tail:
        acc += pmf[high]
        high -= 1
    return low, high
