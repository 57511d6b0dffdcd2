"""End to end in headless Chromium: a team admin opens the Evals page, compares two runs side
by side (the paired difference, only the rows whose scores changed), then filters one run's
examples by a failing scorer. Screenshots go to test-output/ui-screenshots/evals-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.access.helpers import MASTER, Client, seed
from tests.evals.test_evals_pages import server, two_runs  # noqa: F401 (fixture)
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream
from tests.ui.test_browser import _login, _page, browser, shot  # noqa: F401 (fixture)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration


@pytest.fixture
def runs(server: GatewayServer, upstreams: dict[str, FakeUpstream]) -> tuple[str, str, str]:  # noqa: F811
    admin = Client(server.base, MASTER, server)
    world = seed(admin)
    key = world.keys["team_admin:a"]
    base, run = two_runs(admin.as_(key), upstreams["alpha"])
    return key, base, run


@pytest.fixture
def page(browser: Browser, server: GatewayServer, runs: tuple[str, str, str]) -> Iterator[Page]:  # noqa: F811
    errors: list[str] = []
    opened = _page(browser, errors)
    _login(opened, server.base, runs[0])
    yield opened
    opened.context.close()
    assert errors == [], f"browser errors: {errors}"


def test_compare_two_runs_side_by_side(page: Page, runs: tuple[str, str, str]) -> None:
    from playwright.sync_api import expect

    _, base, run = runs
    page.click("nav >> text=Evals")
    expect(page.locator("table.eval-runs tbody tr")).to_have_count(2)
    expect(page.locator(f"#run-{run}")).to_contain_text("changed")
    shot(page, "evals-01-runs")

    page.select_option("#compare-base", base)
    page.select_option("#compare-run", run)
    page.click("#compare-button")
    page.wait_for_selector("table.eval-comparison")
    assert f"base={base}" in page.url and f"run={run}" in page.url
    exact = page.locator("tr.comparison-row[data-scorer=exact]")
    expect(exact).to_contain_text("1.000")
    expect(exact).to_contain_text("-0.500")
    expect(page.locator("#side-base")).to_contain_text("base")
    expect(page.locator("#side-run")).to_contain_text("changed")
    expect(page.locator("tr.pair-row")).to_have_count(6)
    expect(page.locator("tr.pair-row.changed")).to_have_count(3)
    shot(page, "evals-02-compare")

    page.check("#changed-only")
    page.click("#filter-pairs")
    expect(page.locator("tr.pair-row")).to_have_count(3)
    rows = page.eval_on_selector_all("tr.pair-row", "els => els.map(e => +e.dataset.row)")
    assert rows == [1, 3, 5]
    expect(page.locator("#pair-count")).to_contain_text("3 of 6 rows")
    shot(page, "evals-03-changed")

    page.click(f"#side-run a[href$='/evals/{run}']")
    page.wait_for_selector("table.eval-summary")
    page.select_option("#failing", "exact")
    page.click("#filter-results")
    expect(page.locator("tr.result-row")).to_have_count(3)
    expect(page.locator("#result-count")).to_contain_text("3 of 6 rows")
    failing = page.locator("tr.result-row td.score-fail[data-scorer=exact]")
    expect(failing).to_have_count(3)
    shot(page, "evals-04-failing")
