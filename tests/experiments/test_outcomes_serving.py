"""More of an experiment's life through a real gateway and the official `openai` SDK: a Thompson
bandit that moves traffic to the better variant while units already placed keep theirs, a
session-level metric joined to variants through the session, and `missing: zero` (no thumbs up
counts as not satisfied) against the default (a unit without a score is left out)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.conftest import GatewayFactory
from tests.experiments.helpers import (
    METRICS,
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


def test_a_thompson_bandit_moves_new_units_to_the_better_variant_and_keeps_placed_ones(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    alpha, beta = upstreams["alpha"], upstreams["beta"]
    spec = experiment(allocation="thompson", floor=0.05, min_units=1000)
    gw = start(gateway, alpha, beta, experiments=[spec])
    first: dict[str, str] = {}
    traces: dict[str, list[str]] = {"a": [], "b": []}
    with sdk(gw) as client, http(gw) as c:
        for i in range(20):
            trace_id, exp, variant = ask(client, f"early-{i}")
            assert exp == "exp1"
            first[f"early-{i}"] = variant
            traces[variant].append(trace_id)
        assert set(first.values()) == {"a", "b"}  # an even split to start with
        for trace_id in traces["a"]:
            score(c, trace_id, False)
        for trace_id in traces["b"]:
            score(c, trace_id, True)
        # reading the report evaluates the experiment: the bandit re-weighs once all is in (a
        # report read while the last scores were still being written re-weighed on part of
        # them, so wait for the weights of the whole set, not just for the counts)
        report = report_until(
            c,
            "exp1",
            lambda r: (
                variants(r)["a"]["scored_units"] + variants(r)["b"]["scored_units"] == 20
                and r["weights"]["b"] > 0.9
            ),
        )
        weights = report["weights"]
        assert weights["b"] > 0.9 and weights["a"] == pytest.approx(0.05, abs=0.02)
        assert len(report["allocations"]) >= 3  # the first split, the re-allocation, now
        # units placed before keep their variant; new units go mostly to b
        for user, variant in first.items():
            assert ask(client, user)[2] == variant
        later = Counter(ask(client, f"late-{i}")[2] for i in range(40))
    assert later["b"] >= 30, later  # 95% expected; the unit hashes are fixed
    assert report["decision"] == "running"


def test_a_session_level_metric_is_joined_to_variants_through_the_session(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], database_url: str
) -> None:
    alpha, beta = upstreams["alpha"], upstreams["beta"]
    metrics = {**METRICS, "resolved": {"type": "boolean", "level": "session"}}
    spec = experiment(unit="session", metric="resolved")
    gw = start(
        gateway,
        alpha,
        beta,
        database_url,
        experiments=[spec],
        feedback={"metrics": metrics, "flush_interval": 0.05},
    )
    placed: dict[str, str] = {}
    last: dict[str, str] = {}
    with sdk(gw) as client:
        for i in range(12):
            session = f"conv-{i}"
            for _ in range(2):  # two turns per conversation, one variant
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"x-opsgate-session-id": session},
                )
                raw.parse()
                variant = raw.headers["x-opsgate-variant"]
                assert placed.setdefault(session, variant) == variant
                last[session] = raw.headers["x-opsgate-trace-id"]
    assert set(placed.values()) == {"a", "b"}
    with http(gw) as c:
        for session, variant in placed.items():
            wait_for_trace(gw, last[session])  # a session score needs the session stored
            resp = c.post(
                "/v1/feedback",
                json={"session_id": session, "metric": "resolved", "value": variant == "b"},
            )
            assert resp.status_code in (200, 201, 202), resp.text
        count = Counter(placed.values())
        report = report_until(
            c,
            "exp1",
            lambda r: all(variants(r)[v]["scored_units"] == count[v] for v in ("a", "b")),
        )
    rows = variants(report)
    assert rows["a"]["units"] == count["a"] and rows["b"]["units"] == count["b"]
    assert rows["a"]["requests"] == 2 * count["a"]
    assert (rows["a"]["mean"], rows["b"]["mean"]) == (0.0, 1.0)


@pytest.mark.parametrize("missing", ["skip", "zero"])
def test_units_without_feedback_are_left_out_or_count_as_zero(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], missing: str
) -> None:
    alpha, beta = upstreams["alpha"], upstreams["beta"]
    spec = experiment(metric={"name": "thumbs", "missing": missing})
    gw = start(gateway, alpha, beta, experiments=[spec])
    by_variant: dict[str, list[str]] = {"a": [], "b": []}
    with sdk(gw) as client:
        for i in range(16):
            trace_id, _, variant = ask(client, f"user-{i}")
            by_variant[variant].append(trace_id)
    assert by_variant["a"] and len(by_variant["b"]) >= 2
    half = len(by_variant["b"]) // 2
    with http(gw) as c:
        for trace_id in by_variant["b"][:half]:  # half of b's users give a thumbs up
            score(c, trace_id, True)
        units = {v: len(t) for v, t in by_variant.items()}

        def ready(r: dict[str, Any]) -> bool:
            rows = variants(r)
            return all(rows[v]["units"] == units[v] for v in units) and (
                rows["b"]["mean"] is not None and rows["b"]["mean"] > 0
            )

        rows = variants(report_until(c, "exp1", ready))
    if missing == "skip":  # only scored units count: a has none, b's scored ones all said yes
        assert rows["a"]["scored_units"] == 0 and rows["a"]["mean"] is None
        assert rows["b"]["scored_units"] == half and rows["b"]["mean"] == 1.0
    else:  # every unit counts; no thumbs up = not satisfied
        assert rows["a"]["scored_units"] == units["a"] and rows["a"]["mean"] == 0.0
        assert rows["b"]["scored_units"] == units["b"]
        assert rows["b"]["mean"] == pytest.approx(half / units["b"])
