"""Online evaluation on a real gateway: live answers drawn at the configured rate, scored in the
background (the local detector, a judge through the gateway's own pipeline), recorded in the
score store with source `online`, capped per hour, counted in Prometheus and emitted to
OpenTelemetry."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.access.helpers import MASTER, Client
from tests.evals.online import (
    JUDGE_ANSWER,
    MESSAGES,
    SUPPORTED,
    Online,
    OnlineStarter,
    binomial_interval,
    online_config,
    online_gateway,  # noqa: F401 (fixture)
)
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration

REQUESTS = 300
RATE = 0.25


def test_the_sampling_rate_lies_in_its_binomial_interval(
    online_gateway: OnlineStarter,  # noqa: F811
    upstreams: dict[str, FakeUpstream],
) -> None:
    upstreams["alpha"].default = Reply(SUPPORTED)
    online = online_gateway(
        [{"model": "support-bot", "sample": RATE, "scorers": ["hallucination"]}]
    )
    with httpx.Client(base_url=online.server.base, timeout=30) as http:
        asked = {online.chat(http) for _ in range(REQUESTS)}
        others = {online.chat(http, "other-bot") for _ in range(20)}
    online.settle()
    stats = online.evaluator.stats
    low, high = binomial_interval(REQUESTS, RATE)
    assert low <= stats.queued <= high, (stats.queued, low, high)
    assert stats.dropped == 0 and stats.failed == 0
    scores = online.scores("hallucination", stats.queued)
    assert len(scores) == stats.queued == stats.recorded
    scored = {s["trace_id"] for s in scores}
    assert len(scored) == len(scores) and scored <= asked and not scored & others
    assert all(s["source"] == "online" and s["value"] is False for s in scores), scores[:3]
    assert all(s["model"] == "support-bot" for s in scores)
    assert not upstreams["beta"].requests  # no judge in this rule


def test_a_judge_scores_through_the_gateway_streamed_or_not(
    online_gateway: OnlineStarter,  # noqa: F811
    upstreams: dict[str, FakeUpstream],
) -> None:
    upstreams["alpha"].default = Reply("It was finished in 1925 by Gustave Klimt.")
    upstreams["beta"].default = Reply(JUDGE_ANSWER)
    rules = [{"model": "*", "sample": 1.0, "scorers": ["hallucination", "faithfulness"]}]
    online = online_gateway(rules)
    client = openai.OpenAI(base_url=online.server.url, api_key="none", max_retries=0)
    ids = []
    for stream in (False, True, False, True):
        raw = client.chat.completions.with_raw_response.create(
            model="support-bot",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=stream,
        )
        answer = raw.parse()
        if stream:
            "".join(c.choices[0].delta.content or "" for c in answer if c.choices)  # type: ignore[union-attr]
        ids.append(raw.headers["x-opsgate-trace-id"])
    client.close()
    online.settle()
    halluc = {s["trace_id"]: s for s in online.scores("hallucination", 4)}
    faith = {s["trace_id"]: s for s in online.scores("faithfulness", 4)}
    assert set(halluc) == set(faith) == set(ids)
    assert all(s["value"] is True for s in halluc.values())  # flagged: not in the context
    assert all(s["value"] == 1.0 and "grounded" in s["comment"] for s in faith.values())
    # one judge call per answer, through the gateway: traced as `judge` (the same judgement
    # again is an exact cache hit), never sampled itself
    judged = upstreams["beta"].requests[0].body["messages"][-1]["content"]
    assert "1925" in judged and "1889" in judged
    traces = httpx.get(
        f"{online.server.base}/admin/v1/traces", params={"model": "judge", "limit": "50"}
    ).json()["data"]
    assert len(traces) == 4 and all(t["metadata"]["source"] == "online_eval" for t in traces)
    hits = sum(t["cache"] == "hit-exact" for t in traces)
    assert hits + len(upstreams["beta"].requests) == 4 and hits >= 1
    assert online.evaluator.stats.queued == 4
    status = httpx.get(f"{online.server.base}/admin/v1/evals/online").json()
    assert status["enabled"] and status["stats"]["recorded"] == 8
    (rule,) = status["rules"]
    assert rule["window"]["faithfulness"] == {"mean": 1.0, "flagged": 0.0, "scores": 4}
    assert rule["window"]["hallucination"]["flagged"] == 1.0
    text = online.metrics()
    line = 'opsgate_online_scores_total{metric="faithfulness",model="*",outcome="recorded"} 4.0'
    assert line in text
    assert 'opsgate_online_flagged_ratio{metric="hallucination",model="*"} 1.0' in text
    assert 'opsgate_online_score{metric="faithfulness",model="*"} 1.0' in text
    assert re.search(r'opsgate_online_samples_total\{outcome="queued"\} 4\.0', text)
    events = [
        (span.attributes or {}).get("opsgate.score.source")
        for span in online.spans.get_finished_spans()
        if span.name == "evaluation faithfulness"
        for event in span.events
        if event.name == "gen_ai.evaluation.result"
    ]
    assert events == ["online"] * 4


def test_judge_calls_stop_at_the_hourly_cost_cap(
    online_gateway: OnlineStarter,  # noqa: F811
    upstreams: dict[str, FakeUpstream],
) -> None:
    upstreams["alpha"].default = Reply(SUPPORTED)
    upstreams["beta"].default = Reply(JUDGE_ANSWER)
    rules = [{"model": "support-bot", "sample": 1.0, "scorers": ["faithfulness", "hallucination"]}]
    # $1 per token: the first judgement alone passes the $0.50 cap
    online = online_gateway(
        rules,
        judge_price={"input": 1_000_000, "output": 1_000_000},
        online_usd_per_hour=0.5,
        online_concurrency=1,
    )
    with httpx.Client(base_url=online.server.base, timeout=30) as http:
        for _ in range(4):
            online.chat(http)
    online.settle()
    stats = online.evaluator.stats
    assert len(upstreams["beta"].requests) == 1
    assert (stats.skipped, stats.recorded) == (3, 5)  # 1 faithfulness + 4 hallucination
    assert stats.judge_cost_micros > 500_000
    assert len(online.scores("faithfulness", 1)) == 1
    assert len(online.scores("hallucination", 4)) == 4
    text = online.metrics()
    assert (
        'opsgate_online_scores_total{metric="faithfulness",model="support-bot",outcome="skipped"}'
        " 3.0" in text
    )


def test_a_scorer_that_cannot_score_is_counted_not_recorded(
    online_gateway: OnlineStarter,  # noqa: F811
    upstreams: dict[str, FakeUpstream],
) -> None:
    upstreams["alpha"].default = Reply(SUPPORTED)
    upstreams["beta"].default = Reply("I think it is fine.")  # never JSON: retried once, failed
    rules = [{"model": "support-bot", "sample": 1.0, "scorers": ["faithfulness", "hallucination"]}]
    online = online_gateway(rules)
    with httpx.Client(base_url=online.server.base, timeout=30) as http:
        online.chat(http)
        resp = http.post(
            "/v1/chat/completions",
            json={"model": "support-bot", "messages": [{"role": "user", "content": "Hi?"}]},
        )
        assert resp.status_code == 200
    online.settle()
    stats = online.evaluator.stats
    # faithfulness: unparseable twice, then no context; hallucination: no context once
    assert (stats.recorded, stats.failed) == (1, 3), stats
    assert len(upstreams["beta"].requests) == 2
    assert len(online.scores("hallucination", 1)) == 1
    assert online.scores("faithfulness", 0, within=0.5) == []


def test_judges_run_as_the_configured_key(
    tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> None:
    """`evals.judge_key`: judge calls are that key's traffic (its id on their traces), and its
    allowed models apply (a judge it may not call fails, counted, nothing recorded)."""
    upstreams["alpha"].default = Reply(SUPPORTED)
    upstreams["beta"].default = Reply(JUDGE_ANSWER)
    rules = [{"model": "support-bot", "sample": 1.0, "scorers": ["faithfulness"]}]
    env = {"OPSGATE_DATABASE_URL": f"sqlite:///{tmp_path}/keys.db", "OPSGATE_MASTER_KEY": MASTER}
    with GatewayServer(make_config(online_config(upstreams, rules), env)) as first:
        admin = Client(first.base, MASTER, first)
        judge = admin.ok("POST", "/admin/v1/keys", {"role": "service", "models": ["judge"]})
        narrow = admin.ok("POST", "/admin/v1/keys", {"role": "service", "models": ["other-bot"]})
    for key, recorded in ((judge, 1), (narrow, 0)):
        data = online_config(upstreams, rules, judge_key=str(key["key"]))
        with GatewayServer(make_config(data, env)) as server:
            with httpx.Client(base_url=server.base, timeout=30) as http:
                resp = http.post(
                    "/v1/chat/completions",
                    json={"model": "support-bot", "messages": MESSAGES},
                    headers={"authorization": f"Bearer {MASTER}"},
                )
                assert resp.status_code == 200, resp.text
            online = Online(server, InMemorySpanExporter())
            online.settle()
            assert online.evaluator.stats.recorded == recorded, online.evaluator.stats
            if recorded:
                # the judge's trace reaches the store through the background writer
                deadline = time.monotonic() + 15
                while True:
                    traces = Client(server.base, MASTER, server).ok(
                        "GET", "/admin/v1/traces", params={"model": "judge"}
                    )["data"]
                    if traces or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                assert [t["key_id"] for t in traces] == [key["id"]]
            else:
                assert online.evaluator.stats.failed == 1
