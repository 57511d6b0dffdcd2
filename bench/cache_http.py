"""Hit latency (exact, semantic) against a miss through the simulator, over HTTP.

The gateway runs in this process (uvicorn in a thread) with `cache:` from `CACHE`; requests go
one at a time over a kept-alive connection. A miss pays the simulator's answer (120 ms to the first
token, 8 ms per token, 48 tokens); a hit pays only the gateway."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from bench.stats import percentile
from opsgate.app import create_app
from opsgate.config import parse_config

SYSTEM = "You are the support assistant of ACME Cloud. Answer in two sentences."
CACHE = {"semantic": {"enabled": True, "embedder": {"type": "hashing"}}}


@dataclass(frozen=True, slots=True)
class HttpRow:
    case: str
    requests: int
    p50_ms: float
    p99_ms: float


@contextmanager
def cached_gateway() -> Iterator[str]:
    """A gateway on the simulator with the cache on; yields its base URL."""
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        deployment = {"provider": "simulator", "model": "sim"}
        data = {"models": [{"name": "m", "deployments": [deployment]}], "cache": CACHE}
        env = {"OPSGATE_DATABASE_URL": f"sqlite:///{tmp}/bench.db"}
        app = create_app(parse_config(data, source="<bench>", env=env))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10)


def _body(question: str) -> dict[str, Any]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    return {"model": "m", "messages": messages, "temperature": 0}


def _one(http: httpx.Client, question: str, expect: str) -> float:
    t0 = time.perf_counter()
    resp = http.post("/v1/chat/completions", json=_body(question))
    took = (time.perf_counter() - t0) * 1000
    got = resp.headers.get("x-opsgate-cache")
    if resp.status_code != 200 or got != expect:
        raise RuntimeError(f"expected a {expect}, got {resp.status_code} {got}: {resp.text}")
    return took


def _series(http: httpx.Client, questions: list[str], expect: str) -> list[float]:
    return sorted(_one(http, q, expect) for q in questions)


def run_http(misses: int = 30, hits: int = 300) -> list[HttpRow]:
    with cached_gateway() as base, httpx.Client(base_url=base, timeout=60) as http:
        _series(http, ["How do I rotate my API key?"], "miss")
        miss = _series(
            http, [f"Question {i}: how do I configure region {i}?" for i in range(misses)], "miss"
        )
        exact: list[float] = []
        semantic: list[float] = []
        for i in range(hits + 50):  # interleaved, so both see the same background work
            e = _one(http, "How do I rotate my API key?", "hit-exact")
            s = _one(http, "how do i rotate my api key", "hit-semantic")
            if i >= 50:
                exact.append(e)
                semantic.append(s)
        exact.sort()
        semantic.sort()
    return [
        HttpRow("miss (simulator answers)", misses, percentile(miss, 50), percentile(miss, 99)),
        HttpRow("exact hit", hits, percentile(exact, 50), percentile(exact, 99)),
        HttpRow("semantic hit (hashing)", hits, percentile(semantic, 50), percentile(semantic, 99)),
    ]
