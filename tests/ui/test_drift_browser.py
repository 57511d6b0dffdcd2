"""The Drift page end to end in real headless Chromium: a monitor driven into drift by shifted
traffic is listed with its state; its page shows the evidence chart with data points, sample
sizes, the topic clusters that grew with example prompts, and its proposal, which the master
key accepts (a dataset); the Overview shows the drift badge. Screenshots:
test-output/ui-screenshots/5x-drift*.png."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.access.helpers import MASTER
from tests.drift.conftest import DriftGw, drift_gateway
from tests.ui.test_browser import _login, _page, browser, shot

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.integration
__all__ = ["browser", "drift_gateway"]
BILLING = [
    "Why was I charged twice for my {m} invoice?",
    "How do I update the card on my {m} bill?",
    "Can I get a refund for the {m} payment?",
]
SHIPPING = [
    "Where is my parcel sent on {m}?",
    "My package from {m} has not arrived yet",
    "Can I change the delivery address for my {m} order?",
]
MONTHS = ["January", "March", "May", "July", "September", "November"]


def _texts(rng: random.Random, templates: list[str], n: int) -> list[str]:
    return [rng.choice(templates).format(m=rng.choice(MONTHS)) for _ in range(n)]


def test_the_drift_page_shows_a_drifted_monitor_its_chart_and_clusters(
    browser: Browser, drift_gateway: Any, db_url: str
) -> None:
    from playwright.sync_api import expect

    gw: DriftGw = drift_gateway(db_url)
    rng = random.Random(3)
    t0 = time.time()
    for q in _texts(rng, BILLING, 60):
        gw.chat(q)
    gw.wait_samples(60)
    gw.backdate(7200)
    for q in _texts(rng, BILLING, 30) + _texts(rng, SHIPPING, 30):
        gw.chat(q)
    gw.wait_samples(120)
    spec = {
        "name": "topics",
        "kind": "input",
        "window": 3600,
        "reference": {"type": "fixed", "start": t0 - 7260, "end": time.time() - 7199},
    }
    assert gw.admin.call("POST", "/admin/v1/drift/monitors", spec).status_code == 201
    for _ in range(2):  # two evaluations: two points on the chart
        ran = gw.admin.ok("POST", "/admin/v1/drift/run", {"monitors": ["topics"]})["data"][0]
    assert ran["state"] == "drift", ran

    errors: list[str] = []
    page = _page(browser, errors)
    _login(page, gw.server.base, MASTER)
    expect(page.locator("#drift-badge")).to_contain_text("1 in drift")
    shot(page, "50-drift-overview-badge")
    page.click("nav >> text=Drift")
    expect(page.locator("#monitor-topics")).to_contain_text("drift")
    shot(page, "51-drift")
    page.click("a.monitor-link >> text=topics")
    expect(page.locator("#state")).to_have_text("drift")
    expect(page.locator("#sizes")).to_contain_text("60 reference / 60 current")
    chart = page.locator("div.chart[data-chart=evidence]")
    chart.locator("canvas").wait_for()
    assert int(chart.get_attribute("data-points") or "0") >= 2
    grown = page.locator("tr.cluster", has=page.locator("td.delta", has_text="+"))
    expect(grown.first).to_be_visible()
    examples = " ".join(grown.locator(".example").all_inner_texts())
    assert any(word in examples for word in ("parcel", "package", "delivery"))
    shot(page, "52-drift-monitor")
    page.click("button[name=accept]")
    expect(page.locator("#done")).to_contain_text("accepted")
    expect(page.locator("#proposals")).to_contain_text("drift-topics-")
    assert errors == [], f"browser errors: {errors}"
    page.context.close()
