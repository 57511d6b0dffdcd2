"""End to end in a real headless Chromium (Debian's `chromium`, driven by Playwright): log in,
charts with data, filter and open traces, create and revoke a key, what a viewer may not do,
error pages and escaping. A screenshot of each page goes to test-output/ui-screenshots/."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest

from tests.fixtures.needs import need
from tests.ui.conftest import MASTER, XSS_METADATA, Seeded

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "ui-screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    need(importlib.util.find_spec("playwright") is not None, "playwright is not installed")
    need(Path(CHROMIUM).exists(), "Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 414, "height": 896}


def _page(browser: Browser, errors: list[str], viewport: dict[str, int] = DESKTOP) -> Page:
    """A fresh browser context (no cookies) whose script errors, CSP violations and failed
    sub-resources (not the pages themselves: a 404 page is expected) land in `errors`."""
    page = browser.new_context(viewport=viewport).new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def console(msg: Any) -> None:
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            errors.append(msg.text)

    def response(resp: Any) -> None:
        if resp.status >= 400 and resp.request.resource_type != "document":
            errors.append(f"{resp.status} {resp.url}")

    page.on("console", console)
    page.on("response", response)
    return page


def _login(page: Page, base: str, key: str) -> None:
    page.goto(f"{base}/ui/")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def admin_page(browser: Browser, seeded: Seeded) -> Iterator[Page]:
    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(f"{seeded.base}/ui/login")
    shot(page, "01-login")
    _login(page, seeded.base, MASTER)
    yield page
    page.context.close()
    assert errors == [], f"browser errors: {errors}"


def test_overview_charts_have_data(admin_page: Page, seeded: Seeded) -> None:
    from playwright.sync_api import expect

    page = admin_page
    assert page.url.endswith("/ui/overview")
    page.wait_for_selector(".chart canvas")
    assert page.locator(".chart canvas").count() == 6
    series: Any = page.evaluate(
        "JSON.parse(document.getElementById('overview-charts').textContent).charts"
    )
    by_id = {c["id"]: c for c in series}
    assert sum(v or 0 for v in by_id["requests"]["series"][0]["values"]) > 0
    assert any(v for v in by_id["latency"]["series"][1]["values"]), "p95 has points"
    assert any(v for v in by_id["errors"]["series"][0]["values"]), "the two failures show"
    assert any(v for v in by_id["cache"]["series"][0]["values"]), "the cache hit shows"
    drawn = page.eval_on_selector_all(".chart", "els => els.map(e => +e.dataset.points)")
    assert all(n > 0 for n in drawn), drawn
    assert "chat-fast" in page.inner_text(".tops")
    expect(page.locator(".tops")).to_contain_text("alice")  # the end-user panel loads after
    shot(page, "02-overview")


def test_filter_traces_and_open_one(admin_page: Page, seeded: Seeded) -> None:
    from playwright.sync_api import expect

    page = admin_page
    page.click("nav >> text=Traces")
    page.wait_for_selector("#trace-results tbody tr")
    assert page.locator("#trace-results tbody tr").count() == seeded.traces
    shot(page, "03-traces")
    page.select_option("select[name=status]", "error")  # htmx swaps the table in place
    expect(page.locator("#trace-results tbody tr")).to_have_count(2)
    assert "status=error" in page.url
    assert set(page.locator("#trace-results .badge[class*=status-]").all_inner_texts()) == {
        "error 502"
    }
    shot(page, "04-traces-filtered")
    page.click("#trace-results a.trace-link >> nth=0")
    page.wait_for_selector("table.spans")
    assert page.locator("table.spans svg.bar rect").count() >= 2, "request + upstream attempt"
    assert "chat-flaky" in page.inner_text("main")
    shot(page, "05-trace")


def test_xss_in_prompt_and_metadata_is_shown_as_text(admin_page: Page, seeded: Seeded) -> None:
    page = admin_page
    page.goto(f"{seeded.base}/ui/traces/{seeded.xss_trace_id}")
    page.click("#bodies a.button-link")  # htmx fetches the bodies into the page
    page.wait_for_selector("pre.body")
    assert page.evaluate("window.__xss") is None
    assert "<script>window.__xss=1</script>" in page.inner_text("pre.body >> nth=0")
    assert XSS_METADATA in page.inner_text("dl.metadata")
    assert page.locator("dl.metadata img").count() == 0
    shot(page, "06-trace-bodies-xss")


def test_create_and_revoke_a_key(admin_page: Page, seeded: Seeded) -> None:
    page = admin_page
    page.click("nav >> text=Keys")
    page.wait_for_selector("table.keys")
    assert page.locator("table.keys meter").count() >= 1, "the member key's budget bar"
    shot(page, "07-keys")
    page.click("details.create-key summary")
    page.fill("input[name=alias]", "browser-made")
    page.select_option("select[name=role]", "member")
    page.fill("input[name=team_id]", "ml")
    page.click("#create-key button[type=submit]")
    secret = page.input_value("#secret")
    assert secret.startswith("og-") and "only time" in page.inner_text(".reveal")
    shot(page, "08-key-created")
    client = openai.OpenAI(base_url=seeded.server.url, api_key=secret, max_retries=0)
    assert client.chat.completions.create(
        model="chat-fast", messages=[{"role": "user", "content": "hi"}]
    ).choices

    page.click("text=Back to keys")
    page.once("dialog", lambda dialog: dialog.accept())
    row = page.locator("tr", has_text="browser-made")
    row.locator("button.danger").click()
    page.wait_for_selector(".alert.ok")
    assert "revoked" in page.inner_text(".alert.ok")
    assert page.locator("tr", has_text="browser-made").count() == 0, "revoked keys hidden"
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="chat-fast", messages=[{"role": "user", "content": "x"}]
        )


def test_models_page(admin_page: Page, seeded: Seeded) -> None:
    page = admin_page
    page.click("nav >> text=Models")
    page.wait_for_selector("table.deployments")
    text = page.inner_text("main")
    assert "sim-a" in text and "sim-broken" in text and "closed" in text
    shot(page, "09-models")


def test_viewer_cannot_create_keys_or_read_bodies(browser: Browser, seeded: Seeded) -> None:
    errors: list[str] = []
    page = _page(browser, errors)
    _login(page, seeded.base, seeded.viewer_key)
    page.click("nav >> text=Keys")
    page.wait_for_selector("main h1")
    assert page.locator("#create-key").count() == 0
    assert page.locator("button.danger").count() == 0
    shot(page, "10-viewer-keys")
    csrf = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    resp = page.request.post(
        f"{seeded.base}/ui/keys", form={"csrf_token": csrf, "alias": "viewer-made"}
    )
    assert resp.status == 403
    page.goto(f"{seeded.base}/ui/traces/{seeded.xss_trace_id}")
    assert page.locator("#bodies a").count() == 0
    assert "may not read prompts" in page.inner_text("#bodies")
    shot(page, "11-viewer-trace")
    resp = page.request.get(f"{seeded.base}/ui/traces/{seeded.xss_trace_id}?bodies=1")
    assert resp.status == 403
    page.context.close()
    assert errors == []


def test_error_pages(admin_page: Page, seeded: Seeded) -> None:
    page = admin_page
    resp = page.goto(f"{seeded.base}/ui/traces/{'0' * 32}")
    assert resp is not None and resp.status == 404
    assert page.inner_text("h1") == "Not found"
    shot(page, "12-not-found")
    forged = page.request.post(
        f"{seeded.base}/ui/keys", form={"csrf_token": "forged", "alias": "csrf-attack"}
    )
    assert forged.status == 403
    page.set_content(forged.text())
    assert "security token" in page.inner_text("body")


def _fits(page: Page, name: str) -> None:
    """Nothing wider than the window (the page does not scroll sideways) and, once logged in,
    "Log out" is on screen; then a full-page screenshot."""
    scroll, client = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    wide = page.evaluate(  # what sticks out, outside containers that scroll sideways
        """w => {
          const inScroller = e => {
            for (let p = e.parentElement; p; p = p.parentElement)
              if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) return true;
            return false;
          };
          return [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > w + 1 && !inScroller(e))
            .slice(0, 5).map(e => e.tagName.toLowerCase() + '.' + e.className);
        }""",
        client,
    )
    assert scroll <= client, f"{name}: {scroll} px wide in a {client} px window: {wide}"
    logout = page.locator("header button", has_text="Log out")
    if logout.count():
        box = logout.bounding_box()
        assert logout.is_visible() and box is not None, name
        assert box["x"] >= 0 and box["x"] + box["width"] <= client, f"{name}: Log out at {box}"
    shot(page, f"narrow-{name}")


def test_phone_width_nothing_overflows(browser: Browser, seeded: Seeded) -> None:
    errors: list[str] = []
    page = _page(browser, errors, PHONE)
    page.goto(f"{seeded.base}/ui/login")
    _fits(page, "login")
    _login(page, seeded.base, MASTER)
    page.wait_for_selector(".chart canvas")
    _fits(page, "overview")
    pages = page.eval_on_selector_all("header nav a", "els => els.map(e => e.href)")
    assert len(pages) >= 4
    for href in pages[1:]:
        page.goto(href)
        page.wait_for_load_state("networkidle")
        _fits(page, href.rstrip("/").rsplit("/", 1)[-1])
    page.goto(f"{seeded.base}/ui/traces")
    page.click("#trace-results a.trace-link >> nth=0")
    page.wait_for_selector("table.spans")
    _fits(page, "trace")
    page.goto(f"{seeded.base}/ui/keys")
    page.click("details.create-key summary")
    _fits(page, "keys-create")
    page.goto(f"{seeded.base}/ui/traces/{'0' * 32}")
    _fits(page, "not-found")
    page.context.close()
    assert errors == []
