"""Best-of-n re-ranking through a real gateway with the official `openai` SDK and real fake
upstreams: the valid-JSON candidate wins (whole and streamed), every candidate is a span of the
trace with its cost and the trace's cost is all of them, the header's n is capped (400), a
scorer that fails or raises never makes a 500, and a time budget returns the best so far."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from opsgate.evals.scorers import Sample, Scorer, ScoreResult, register_scorer
from tests.conftest import GatewayFactory
from tests.experiments.helpers import sdk
from tests.fixtures._steps import Hang, Reply, Status
from tests.fixtures.gateway import GatewayServer, wait_for_trace
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration

PRICE = {"input": 1, "output": 2}  # USD per 1M tokens: one word = 1 or 2 micro-dollars
VALID = '{"city": "Paris", "country": "France"}'
ASK = [{"role": "user", "content": "Give the capital of France as JSON"}]


class Exploding(Scorer):
    """A third-party scorer (registered through the plugin hook) that always raises."""

    kind = "exploding"

    async def score(self, sample: Sample) -> ScoreResult:
        raise RuntimeError("scorer bug")


register_scorer("exploding", lambda params, resources: Exploding(**params))


def start(
    gateway: GatewayFactory, fake: FakeUpstream, best_of: dict[str, Any], **extra: Any
) -> GatewayServer:
    dep = {"provider": "openai", "base_url": fake.url, "model": "up", "api_key": "k"}
    models = [{"name": "extract", "deployments": [{**dep, "price": PRICE}], "best_of_n": best_of}]
    models += extra.pop("models", [])
    return gateway({"models": models, "traces": {"flush_interval": 0.05}, **extra})


def candidates(trace: dict[str, Any]) -> list[dict[str, Any]]:
    found = [s for s in trace["spans"] if s["name"] == "best_of_candidate"]
    return sorted(found, key=lambda s: s["attributes"]["candidate"])


def test_the_valid_json_candidate_is_returned_and_every_candidate_is_paid_for(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    fake.script(Reply("Sure! The capital is Paris."), Reply(VALID), Reply("{city: Paris"))
    gw = start(gateway, fake, {"n": 3, "scorer": "json"})
    with sdk(gw) as client:
        raw = client.chat.completions.with_raw_response.create(model="extract", messages=ASK)
        answer = raw.parse()
    assert json.loads(answer.choices[0].message.content or "") == json.loads(VALID)
    assert raw.headers["x-opsgate-best-of"] == "3"
    assert len(fake.requests) == 3
    assert not any(r.body.get("stream") for r in fake.requests)
    trace = wait_for_trace(gw, raw.headers["x-opsgate-trace-id"])
    spans = candidates(trace)
    assert [s["attributes"]["candidate"] for s in spans] == [0, 1, 2]
    scores = sorted(s["attributes"]["score"] for s in spans)
    assert scores == [0.0, 0.0, 1.0]
    chosen = [s for s in spans if s["attributes"]["chosen"]]
    assert len(chosen) == 1 and chosen[0]["attributes"]["score"] == 1.0
    assert str(chosen[0]["attributes"]["candidate"]) == raw.headers["x-opsgate-best-of-chosen"]
    costs = [s["attributes"]["cost_micros"] for s in spans]
    assert all(c > 0 for c in costs)
    assert trace["cost_micros"] == sum(costs)  # all three candidates, not only the chosen
    assert trace["attempts"] == 3
    assert answer.usage is not None
    assert answer.usage.total_tokens == sum(s["attributes"]["tokens"] for s in spans)
    selection = next(s for s in trace["spans"] if s["name"] == "best_of")
    assert selection["attributes"]["n"] == 3 and selection["attributes"]["budget_expired"] is False


def test_a_stream_gets_the_chosen_answer_after_selection(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    fake.script(Reply("not json at all"), Reply(VALID))
    gw = start(gateway, fake, {"n": 1, "scorer": {"type": "json", "object": True}})
    with sdk(gw) as client:
        stream = client.chat.completions.create(
            model="extract",
            messages=ASK,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-opsgate-best-of": "2"},
        )
        with stream:
            chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == json.loads(VALID)
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].total_tokens > 0
    assert len(fake.requests) == 2
    assert all("stream_options" not in r.body for r in fake.requests)


def test_n_above_the_limit_and_a_model_without_best_of_are_400(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    plain = {"name": "plain", "deployments": [{"provider": "openai", "base_url": fake.url,
                                               "model": "up", "api_key": "k"}]}  # fmt: skip
    gw = start(gateway, fake, {"n": 2, "max_n": 4, "scorer": "json"}, models=[plain])
    with sdk(gw) as client:
        for model, value, code in [
            ("extract", "5", "best_of_too_large"),
            ("extract", "two", "invalid_header"),
            ("plain", "3", "best_of_unavailable"),
        ]:
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(
                    model=model, messages=ASK, extra_headers={"x-opsgate-best-of": value}
                )
            assert caught.value.status_code == 400
            body: Any = caught.value.body
            assert body["code"] == code and body["param"] == "x-opsgate-best-of"
        assert fake.requests == []
        # at the limit it is served, and 1 turns re-ranking off
        client.chat.completions.create(
            model="extract", messages=ASK, extra_headers={"x-opsgate-best-of": "4"}
        )
        assert len(fake.requests) == 4
        client.chat.completions.create(
            model="extract", messages=ASK, extra_headers={"x-opsgate-best-of": "1"}
        )
        assert len(fake.requests) == 5


@pytest.mark.parametrize("scorer", ["exploding", "judge"])
def test_a_scorer_that_errors_fails_its_candidates_not_the_request(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], scorer: str
) -> None:
    fake, judge_upstream = upstreams["alpha"], upstreams["beta"]
    judge_upstream.default = Status(500)  # the judge model is down
    judge_dep = {"provider": "openai", "base_url": judge_upstream.url, "model": "j",
                 "api_key": "k"}  # fmt: skip
    spec: Any = scorer
    if scorer == "judge":
        spec = {"type": "judge", "template": "relevance", "model": "judge"}
    fake.script(Reply("first answer"), Reply("second answer"))
    gw = start(
        gateway,
        fake,
        {"n": 2, "scorer": spec},
        models=[{"name": "judge", "deployments": [judge_dep]}],
        router={"retries": 0},
    )
    with sdk(gw) as client:
        raw = client.chat.completions.with_raw_response.create(model="extract", messages=ASK)
        answer = raw.parse()
    assert raw.status_code == 200
    assert answer.choices[0].message.content in ("first answer", "second answer")
    assert raw.headers["x-opsgate-best-of-chosen"] == "0"  # all failed: the first candidate
    spans = candidates(wait_for_trace(gw, raw.headers["x-opsgate-trace-id"]))
    assert [s["status"] for s in spans] == ["error", "error"]
    assert all(s["attributes"]["score"] is None for s in spans)
    assert all(s["attributes"]["reason"] for s in spans)
    if scorer == "judge":
        assert len(judge_upstream.requests) >= 2  # the judge really was asked, through the gateway


def test_the_time_budget_returns_the_best_answer_so_far(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    fake.script(Reply(VALID), Hang(60), Hang(60))
    gw = start(gateway, fake, {"n": 3, "scorer": "json", "time_budget_ms": 300})
    with sdk(gw) as client:
        raw = client.chat.completions.with_raw_response.create(model="extract", messages=ASK)
        answer = raw.parse()
    assert json.loads(answer.choices[0].message.content or "") == json.loads(VALID)
    trace = wait_for_trace(gw, raw.headers["x-opsgate-trace-id"])
    selection = next(s for s in trace["spans"] if s["name"] == "best_of")
    assert selection["attributes"]["budget_expired"] is True
    spans = candidates(trace)
    assert sum(s["status"] == "ok" for s in spans) == 1
    assert sum(s["status"] == "error" for s in spans) == 2  # cut off, not waited for


def test_the_budget_hold_covers_every_candidate(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    """One call's worst case (1,000 output tokens at $2/M: ~2,000 micro-dollars) fits a
    $0.004 budget; three candidates' (~6,000) never can, so the request is refused up front
    (400: no wait would help) before any candidate is asked."""
    fake = upstreams["alpha"]
    gw = start(gateway, fake, {"n": 1, "scorer": "json"}, settings={"master_key": "sk-master"})
    with httpx.Client(base_url=gw.base, timeout=30) as admin:
        made = admin.post(
            "/admin/v1/keys",
            json={"alias": "small", "budget": {"max_usd": "0.004"}},
            headers={"authorization": "Bearer sk-master"},
        )
        assert made.status_code == 201, made.text
    key = made.json()["key"]
    with openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0) as client:
        client.chat.completions.create(model="extract", messages=ASK, max_tokens=1000)
        assert len(fake.requests) == 1
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="extract",
                messages=ASK,
                max_tokens=1000,
                extra_headers={"x-opsgate-best-of": "3"},
            )
    body: Any = caught.value.body
    assert "budget" in body["message"] and "3,000 output tokens" in body["message"], body
    assert len(fake.requests) == 1  # refused before any candidate was asked


@pytest.mark.parametrize(
    ("verdicts", "chosen"),
    [(("A", "B"), "1"), (("A", "A"), "0")],  # preferred in both orders / a position-biased judge
)
def test_a_pairwise_judge_compares_with_positions_swapped(
    gateway: GatewayFactory,
    upstreams: dict[str, FakeUpstream],
    verdicts: tuple[str, str],
    chosen: str,
) -> None:
    fake, judge_upstream = upstreams["alpha"], upstreams["beta"]
    fake.script(Reply("answer one"), Reply("answer two"))
    judge_upstream.script(*(Reply(f'{{"reasoning": "r", "winner": "{v}"}}') for v in verdicts))
    judge_dep = {"provider": "openai", "base_url": judge_upstream.url, "model": "j",
                 "api_key": "k"}  # fmt: skip
    gw = start(
        gateway,
        fake,
        {"n": 2, "scorer": {"type": "pairwise", "model": "judge"}},
        models=[{"name": "judge", "deployments": [judge_dep]}],
    )
    with sdk(gw) as client:
        raw = client.chat.completions.with_raw_response.create(model="extract", messages=ASK)
        raw.parse()
    assert raw.headers["x-opsgate-best-of-chosen"] == chosen
    prompts = [json.dumps(r.body["messages"]) for r in judge_upstream.requests]
    assert len(prompts) == 2
    first = [p.index("answer one") < p.index("answer two") for p in prompts]
    assert first[0] != first[1]  # the second call shows the two answers the other way round
    trace = wait_for_trace(gw, raw.headers["x-opsgate-trace-id"])
    selection = next(s for s in trace["spans"] if s["name"] == "best_of")
    assert selection["attributes"]["comparisons"] == 1
