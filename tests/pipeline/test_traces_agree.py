"""A mixed load through the gateway: traces, usage rollups, Prometheus counters and OpenTelemetry
spans must agree on counts, tokens and cost."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.sql import SqlTraceStore
from opsgate.store.tables.traces import traces
from opsgate.store.usage import UsageQuery
from opsgate.telemetry.otel import create_tracer
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.upstream import FakeUpstream, Reply, Status

pytestmark = pytest.mark.integration
PRICE = {"input": 1.0, "output": 2.0}  # USD per 1M tokens: 1 and 2 micro-dollars per token
MSG = [{"role": "user", "content": "count these five words"}]


def config(a: FakeUpstream, b: FakeUpstream, db_url: str) -> Any:
    dep_a = {"provider": "openai", "id": "a", "base_url": a.url, "model": "up", "price": PRICE}
    dep_b = {"provider": "anthropic", "id": "b", "base_url": b.base, "model": "cl", "price": PRICE}
    data = {
        "models": [
            {"name": "m", "deployments": [dep_a]},
            {"name": "backup", "deployments": [dep_b]},
        ],
        "router": {"retries": 1, "backoff_base": 0, "fallbacks": {"m": ["backup"]}},
    }
    return make_config(data, {"OPSGATE_DATABASE_URL": db_url})


def send_mixed_load(url: str, a: FakeUpstream, b: FakeUpstream) -> list[str]:
    """Returns the trace id of every request made."""
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    ids: list[str] = []
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(model="m", messages=MSG)
        ids.append(raw.headers["x-opsgate-trace-id"])
    for include in (True, False):
        with client.chat.completions.with_streaming_response.create(
            model="m", messages=MSG, stream=True, stream_options={"include_usage": include}
        ) as resp:
            list(resp.iter_lines())
            ids.append(resp.headers["x-opsgate-trace-id"])
    a.script(Reply(include_usage=False))  # usage estimated locally
    ids.append(
        client.chat.completions.with_raw_response.create(model="m", messages=MSG).headers[
            "x-opsgate-trace-id"
        ]
    )
    a.script(Status(500), Status(500))  # retried, then served by the fallback
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MSG)
    assert raw.headers["x-opsgate-deployment"] == "b"
    ids.append(raw.headers["x-opsgate-trace-id"])
    a.script(Status(503), Status(503))
    b.script(Status(500), Status(500))  # everything fails
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="m", messages=MSG)
    ids.append(info.value.response.headers["x-opsgate-trace-id"])
    for body in ({"model": "nope", "messages": MSG}, {"model": "m"}):
        resp = httpx.post(f"{url}/chat/completions", json=body)
        assert resp.status_code in (400, 404)
        ids.append(resp.headers["x-opsgate-trace-id"])
    return ids


def prometheus(base: str) -> dict[str, float]:
    """Sum of each sample name over its labels."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text):
        for sample in family.samples:
            key = sample.name
            if key == "opsgate_tokens_total":
                key = f"{key}:{sample.labels['direction']}"
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals


async def wait_for_traces(store: SqlTraceStore, ids: list[str]) -> list[Any]:
    deadline = time.monotonic() + 15
    while True:
        found = [await store.get(i) for i in ids]
        if all(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_traces_rollups_metrics_and_spans_agree(
    upstreams: dict[str, FakeUpstream], db_url: str
) -> None:
    a, b = upstreams["alpha"], upstreams["beta"]
    exporter = InMemorySpanExporter()
    tracer = create_tracer(exporter=exporter)
    server = GatewayServer(config(a, b, db_url), tracer=tracer).start()
    try:
        ids = await asyncio.to_thread(send_mixed_load, server.url, a, b)
        metrics = await asyncio.to_thread(prometheus, server.base)
    finally:
        server.stop()  # a graceful stop drains the writer

    engine = make_engine(db_url)
    try:
        store = SqlTraceStore(engine)
        found = await wait_for_traces(store, ids)
        assert all(found), "every request left a trace"
        records = [r for r in found if r is not None]
        async with engine.connect() as conn:
            stored = (await conn.execute(select(func.count()).select_from(traces))).scalar_one()
        assert stored == len(ids) == 11
        rows = await store.usage(
            UsageQuery(since=time.time() - 3600, until=time.time() + 60, step=3600 * 2)
        )
    finally:
        await dispose_engine(engine)

    prompt = sum(r.prompt_tokens for r in records)
    completion = sum(r.completion_tokens for r in records)
    cost = sum(r.cost_micros for r in records)
    errors = sum(r.status == "error" for r in records)
    assert errors == 3
    assert cost == prompt * 1 + completion * 2, "cost is exact micro-dollars from the prices"
    assert sum(r.usage_estimated for r in records) == 1
    fallback = [r for r in records if r.fallback]
    assert len(fallback) == 1
    assert fallback[0].attempts == 3
    attempts = [s for s in fallback[0].spans if s.name == "upstream_attempt"]
    assert [s.attributes["deployment"] for s in attempts] == ["a", "a", "b"]
    streamed = [r for r in records if r.stream]
    assert len(streamed) == 2
    assert all(r.ttft_ms is not None and r.completion_tokens == 3 for r in streamed)

    assert sum(r.requests for r in rows) == len(ids)
    assert sum(r.errors for r in rows) == errors
    assert sum(r.prompt_tokens for r in rows) == prompt
    assert sum(r.completion_tokens for r in rows) == completion
    assert sum(r.cost_micros for r in rows) == cost

    assert metrics["opsgate_requests_total"] == len(ids)
    assert metrics["opsgate_tokens_total:input"] == prompt
    assert metrics["opsgate_tokens_total:output"] == completion
    assert metrics["opsgate_cost_usd_total"] == pytest.approx(cost / 1_000_000)

    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert len(spans) == len(ids)
    attrs = [s.attributes or {} for s in spans]
    assert sum(int(x.get("gen_ai.usage.input_tokens", 0)) for x in attrs) == prompt
    assert sum(int(x.get("gen_ai.usage.output_tokens", 0)) for x in attrs) == completion
    assert {s.context.trace_id for s in spans} == {int(i, 16) for i in ids}
