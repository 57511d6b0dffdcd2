"""The dashboard's pure parts: chart series from rollups, the span timeline, the key form and
the page registry."""

from __future__ import annotations

import pytest
from starlette.datastructures import ImmutableMultiDict
from starlette.routing import Route

from opsgate.access.permissions import Permission
from opsgate.access.principal import ANONYMOUS, Principal, Role
from opsgate.store.histogram import Sketch
from opsgate.store.usage import UsageRow, usage_row
from opsgate.store.usage_buckets import empty_totals
from opsgate.trace import SpanRecord, TraceRecord
from opsgate.ui.key_form import form_body, parse_key_form
from opsgate.ui.pages import builtin_pages
from opsgate.ui.registry import Page, PageRegistry
from opsgate.ui.render import ms, num, pct, usd
from opsgate.ui.timeline import layout
from opsgate.ui.usage_charts import WINDOWS, charts, headline, top


def row(bucket: int, requests: int, **values: float) -> UsageRow:
    totals = empty_totals().sums
    totals.update(requests=requests, **values)
    return usage_row(bucket, {}, totals, Sketch.of([100.0] * requests))


def test_windows_align_to_their_buckets() -> None:
    for window in WINDOWS.values():
        since, until = window.bounds(1_800_000_123.0)
        assert since % window.step == 0 and until == 1_800_000_123.0
        assert until - since >= window.seconds
        assert window.step % 60 == 0


def test_charts_fill_empty_buckets_and_rate_the_partial_one() -> None:
    rows = [row(0, 60, errors=6, cost_micros=2_000_000), row(600, 30, cache_hits=3)]
    data = charts(rows, 0, 750, 300)
    assert data["x"] == [0, 300, 600]
    series = {c["id"]: c["series"] for c in data["charts"]}
    assert series["requests"][0]["values"] == [12.0, 0.0, 12.0]  # 30 in the 150 s so far
    assert series["errors"][0]["values"] == [10.0, None, 0.0]
    assert series["cache"][0]["values"] == [0.0, None, 10.0]
    assert series["cost"][0]["values"] == [2.0, 0.0, 0.0]
    assert series["latency"][1]["values"][1] is None  # a gap, not a zero latency
    assert series["latency"][0]["values"][0] == 100  # clamped to the recorded min and max


def test_headline_and_cache_saving_estimate() -> None:
    assert headline(None, 3600) == {"requests": 0}
    r = row(0, 10, cache_hits=2, cost_micros=800, errors=1, cost_saved_micros=150)
    h = headline(r, 600)
    assert h["per_minute"] == 1 and h["error_rate"] == 0.1 and h["cache_hit_rate"] == 0.2
    assert h["saved_micros"] == 150 and h["cost_micros"] == 800


def test_top_ranks_by_cost_then_requests() -> None:
    a = usage_row(0, {"model": "a"}, {**empty_totals().sums, "requests": 5, "cost_micros": 10})
    b = usage_row(0, {"model": "b"}, {**empty_totals().sums, "requests": 9, "cost_micros": 10})
    c = usage_row(0, {"model": "c"}, {**empty_totals().sums, "requests": 1, "cost_micros": 99})
    assert [t.name for t in top([a, b, c], "model")] == ["c", "b", "a"]
    assert [t.name for t in top([a, b, c], "model", n=1)] == ["c"]


def test_timeline_places_spans_within_the_request() -> None:
    record = TraceRecord("t1", 100.0, 200.0, "chat", "m")
    record.spans = [
        SpanRecord("s2", "t1", "upstream_attempt", 100.05, 150.0, "error"),
        SpanRecord("s1", "t1", "cache_lookup", 100.0, 0.01),
        SpanRecord("s3", "t1", "child", 100.06, 10.0, parent_id="s2"),
        SpanRecord("s4", "t1", "late", 100.3, 100.0),  # ends after the request: widens it
    ]
    timeline = layout(record)
    assert timeline.total_ms == pytest.approx(400)
    names = [b.name for b in timeline.bars]
    assert names == ["chat request", "cache_lookup", "upstream_attempt", "child", "late"]
    request, lookup, attempt, child, late = timeline.bars
    assert request.x_pct == 0 and request.width_pct == pytest.approx(50)
    assert lookup.width_pct == 0.4, "a tiny span stays visible"
    assert attempt.x_pct == pytest.approx(12.5) and attempt.status == "error"
    assert child.depth == 2 and attempt.depth == 1 and request.depth == 0
    assert late.x_pct + late.width_pct <= 100


def test_timeline_of_a_trace_without_spans() -> None:
    timeline = layout(TraceRecord("t", 1.0, 5.0, "embeddings", "e"))
    assert len(timeline.bars) == 1 and timeline.bars[0].width_pct == 100


def form(**values: str) -> ImmutableMultiDict[str, str]:
    return ImmutableMultiDict(values)


def test_key_form_becomes_the_admin_api_body() -> None:
    body = form_body(
        form(
            alias=" a ",
            role="member",
            models="gpt-4o*, o3  mini",
            rpm="10",
            budget_usd="2.5",
            budget_period="daily",
            team_id="",
            tpm="",
        )
    )
    assert body == {
        "alias": "a",
        "role": "member",
        "models": ["gpt-4o*", "o3", "mini"],
        "limits": {"rpm": "10"},
        "budget": {"max_usd": "2.5", "period": "daily"},
    }
    parsed, errors = parse_key_form(form(alias="ok", expires_in="30d"))
    assert errors == [] and parsed is not None and parsed.expires_in == 30 * 86_400
    parsed, errors = parse_key_form(form(role="emperor", rpm="-1", budget_usd="free"))
    assert parsed is None
    assert {e.split(":")[0] for e in errors} == {"role", "limits.rpm", "budget.max_usd"}


def test_registry_lists_pages_by_role() -> None:
    pages = PageRegistry(builtin_pages())
    names = lambda p: [page.name for page in pages.visible(p)]  # noqa: E731
    assert names(ANONYMOUS) == [
        "overview",
        "traces",
        "review",
        "datasets",
        "evals",
        "keys",
        "prompts",
        "experiments",
        "drift",
        "knowledge",
        "tuning",
        "models",
        "security",
    ]
    assert names(Principal("k", Role.VIEWER, team_id="t")) == [
        "overview",
        "traces",
        "evals",
        "keys",
        "prompts",
        "experiments",
        "drift",
        "knowledge",
        "tuning",
        "models",
    ]
    assert names(Principal("k", Role.MEMBER)) == [
        "traces",
        "review",
        "evals",
        "prompts",
        "experiments",
        "knowledge",
    ]
    # A service key may search knowledge bases (an application's own retrieval), so it sees
    # that page's search playground and nothing else.
    assert names(Principal("k", Role.SERVICE)) == ["knowledge"]
    assert len(pages.routes()) == 43


def test_a_new_page_is_one_registration() -> None:
    async def endpoint(request: object) -> None:
        raise AssertionError("not called")

    extra = Page(
        "costs", "Costs", "/costs", (Permission.USAGE_READ,), (Route("/costs", endpoint),), order=36
    )
    pages = PageRegistry([*builtin_pages(), extra])
    assert [p.name for p in pages.pages] == [
        "overview",
        "traces",
        "review",
        "datasets",
        "evals",
        "keys",
        "prompts",
        "costs",
        "experiments",
        "drift",
        "knowledge",
        "tuning",
        "models",
        "security",
    ]
    assert extra.holds("/costs/x") and not extra.holds("/costsheet")
    with pytest.raises(ValueError, match="clashes"):
        pages.add(Page("costs", "Again", "/again", (), ()))


def test_number_formats() -> None:
    assert usd(None) == "\u2013" and usd(0) == "$0.00"
    # exact to the micro-dollar: a cheap request is never $0.0000, a total never rounded
    assert usd(30) == "$0.000030" and usd(4_200) == "$0.004200" and usd(9_999) == "$0.009999"
    assert usd(12_350_000) == "$12.35" and usd(12_345_678) == "$12.345678"
    assert usd(1_234_500_000) == "$1,234.50" and usd(30.4) == "$0.000030"
    assert ms(12.34) == "12.3 ms" and ms(1234) == "1,234 ms" and ms(12_345) == "12.3 s"
    assert ms(float("nan")) == "\u2013" and num(1234) == "1,234" and num(1.5) == "1.50"
    assert pct(0.1234) == "12.3%" and pct(None) == "\u2013"
