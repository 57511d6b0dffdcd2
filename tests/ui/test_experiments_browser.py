"""The Experiments page end to end in real headless Chromium: an experiment with traffic and
feedback is listed; its page shows the per-variant table, the metric chart with data points
and the decision log; Pause works for the master key (CSRF form, audited by the service); a
viewer sees the page without the buttons. Screenshots: test-output/ui-screenshots/4x-*.png."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from tests.access.helpers import MASTER
from tests.conftest import GatewayFactory
from tests.experiments.helpers import BASE, experiment, report_until, start, variants
from tests.fixtures.upstream import FakeUpstream
from tests.ui.test_browser import _login, _page, browser, shot

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.integration
__all__ = ["browser"]


def test_the_experiment_page_shows_the_table_chart_and_log(
    browser: Browser, gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    from playwright.sync_api import expect

    gw = start(
        gateway,
        upstreams["alpha"],
        upstreams["beta"],
        env={"OPSGATE_MASTER_KEY": MASTER},
        experiments=[experiment(min_units=3, traffic={"model": "gpt-4o-mini", "team_id": "ml"})],
    )
    auth = {"authorization": f"Bearer {MASTER}"}
    with httpx.Client(base_url=gw.base, headers=auth, timeout=60) as c:
        for i in range(24):
            body = {
                "model": "gpt-4o-mini",
                "user": f"u{i}",
                "messages": [{"role": "user", "content": "x"}],
            }
            resp = c.post("/v1/chat/completions", json=body)
            good = resp.headers["x-opsgate-variant"] == "b" or i % 3 == 0
            feedback = {
                "trace_id": resp.headers["x-opsgate-trace-id"],
                "metric": "thumbs",
                "value": good,
            }
            assert c.post("/v1/feedback", json=feedback).status_code < 300
        report_until(
            c, "exp1", lambda r: sum(v["scored_units"] for v in variants(r).values()) == 24
        )
        assert c.post("/admin/v1/teams", json={"id": "ml", "name": "ML"}).status_code == 201
        made = c.post("/admin/v1/keys", json={"alias": "v", "role": "viewer", "team_id": "ml"})
        viewer = made.json()["key"]

    errors: list[str] = []
    page = _page(browser, errors)
    _login(page, gw.base, MASTER)
    page.click("nav >> text=Experiments")
    expect(page.locator("table.experiments")).to_contain_text("exp1")
    shot(page, "40-experiments")
    page.click("a.experiment-link >> text=exp1")
    expect(page.locator("#variant-a .units")).to_contain_text("/")
    expect(page.locator("#variant-b")).to_contain_text("b")
    expect(page.locator("#variant-a")).to_contain_text("control")
    scored = sum(
        int(page.locator(f"#variant-{v} .units").inner_text().split("/")[0]) for v in ("a", "b")
    )
    assert scored == 24
    chart = page.locator("div.chart[data-chart=metric]")
    chart.locator("canvas").wait_for()
    assert int(chart.get_attribute("data-points") or "0") > 0
    expect(page.locator("#log")).to_contain_text("created")
    shot(page, "41-experiment")
    page.click("button[name=pause]")
    expect(page.locator("#status")).to_have_text("paused")
    expect(page.locator("#log")).to_contain_text("paused")
    shot(page, "42-experiment-paused")
    assert errors == [], f"browser errors: {errors}"
    page.context.close()

    watcher = _page(browser, errors)
    _login(watcher, gw.base, viewer)
    watcher.goto(f"{gw.base}/ui/experiments/exp1")
    expect(watcher.locator("#variants")).to_be_visible()
    assert watcher.locator("button[name=resume]").count() == 0
    assert watcher.locator("#promote-form").count() == 0
    with httpx.Client(base_url=gw.base, timeout=30) as c:
        refused = c.post(f"{BASE}/exp1/resume", headers={"authorization": f"Bearer {viewer}"})
        assert refused.status_code == 403
    assert errors == [], f"browser errors: {errors}"
    watcher.context.close()
