"""Experiments through a real gateway with the official `openai` SDK: sticky variants by end
user, the headers and the trace columns, the variant's model really called, feedback joined to
variants through the trace, late feedback, and requests outside the experiment."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import GatewayFactory
from tests.experiments.helpers import (
    ask,
    experiment,
    http,
    report_until,
    score,
    sdk,
    start,
    variants,
)
from tests.fixtures.gateway import wait_for_trace
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration


def test_sticky_variants_headers_traces_and_joined_feedback(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], database_url: str
) -> None:
    alpha, beta = upstreams["alpha"], upstreams["beta"]
    gw = start(gateway, alpha, beta, database_url, experiments=[experiment()])
    seen: dict[str, set[str]] = {}
    traces: dict[str, list[str]] = {}
    with sdk(gw) as client:
        for round_ in range(3):
            for i in range(16):
                user = f"user-{i}"
                trace_id, exp, variant = ask(client, user)
                assert exp == "exp1"
                seen.setdefault(user, set()).add(variant)
                traces.setdefault(variant, []).append(trace_id)
            assert round_ >= 0
        outside, exp, variant = ask(client, "user-0", model="m2")  # other traffic
        assert (exp, variant) == ("", "")
    assert all(len(v) == 1 for v in seen.values()), seen  # sticky per end user
    per_variant = Counter(next(iter(v)) for v in seen.values())
    assert set(per_variant) == {"a", "b"}
    # b is served by model m2 (upstream beta), a by gpt-4o-mini (alpha)
    assert len(beta.requests) == 3 * per_variant["b"] + 1
    assert len(alpha.requests) == 3 * per_variant["a"]
    stored = wait_for_trace(gw, traces["b"][0])
    assert (stored["experiment"], stored["variant"]) == ("exp1", "b")
    assert stored["fallback"] is False
    assert wait_for_trace(gw, outside)["experiment"] is None

    with http(gw) as c:
        for trace_id in traces["a"]:
            score(c, trace_id, False)
        for trace_id in traces["b"][: len(traces["b"]) // 2]:
            score(c, trace_id, True)
        want = {"a": per_variant["a"], "b": per_variant["b"]}
        report = report_until(
            c,
            "exp1",
            lambda r: (
                {k: v["units"] for k, v in variants(r).items()} == want
                and variants(r)["a"]["scored_units"] == want["a"]
                and variants(r)["b"]["scored_units"] > 0
            ),
        )
        rows = variants(report)
        assert rows["a"]["requests"] == 3 * want["a"] and rows["a"]["mean"] == 0.0
        assert rows["b"]["scored_units"] <= want["b"] and rows["b"]["mean"] == 1.0
        # late feedback counts: scoring the rest of b's traces now adds its units
        for trace_id in traces["b"][len(traces["b"]) // 2 :]:
            score(c, trace_id, True)
        report = report_until(c, "exp1", lambda r: variants(r)["b"]["scored_units"] == want["b"])
        assert variants(report)["b"]["scored_units"] == want["b"]
        assert report["stats"]["variants"][1]["difference"]["estimate"] == 1.0
