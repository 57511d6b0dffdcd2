"""The Knowledge bases page end to end in real headless Chromium: a base filled with the CLI is
listed with its counts; the search playground shows hits with their scores and the retrievers
that found them; a chat answer that cited the base has a trace page with the retrieval span
(the chunks sent) and the grounding score. Screenshots: test-output/ui-screenshots/5x-*.png."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.cli.test_cli import run
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream, Reply
from tests.rag.helpers import HANDBOOK, MASTER, start
from tests.ui.test_browser import _login, _page, browser, shot

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.integration
__all__ = ["browser"]


def test_ingest_search_and_a_cited_answer(
    browser: Browser, gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    fake = upstreams["alpha"]
    gw = start(gateway, fake)
    folder = tmp_path / "handbook"
    folder.mkdir()
    for name, text in HANDBOOK.items():
        (folder / name).write_text(text)
    env = {"OPSGATE_MASTER_KEY": MASTER}
    assert run("kb", "create", "handbook", "--url", gw.base, env=env).returncode == 0
    done = run("kb", "ingest", "handbook", str(folder), "--url", gw.base, env=env)
    assert done.returncode == 0, done.stderr

    errors: list[str] = []
    page = _page(browser, errors)
    _login(page, gw.base, MASTER)
    page.click("nav >> text=Knowledge bases")
    expect(page.locator("table.knowledge-bases")).to_contain_text("handbook")
    expect(page.locator("table.knowledge-bases")).to_contain_text("3")
    shot(page, "50-knowledge-bases")
    page.click("a.kb-link >> text=handbook")
    expect(page.locator("table.kb-documents")).to_contain_text("vacation.md")
    page.fill("#kb-query", "how many vacation days")
    page.click("#kb-search-button")
    first = page.locator("tr.kb-hit").first
    expect(first).to_contain_text("vacation.md")
    expect(first).to_contain_text("bm25 #1")
    expect(first).to_contain_text("vector")
    expect(page.locator("#kb-timings")).to_contain_text("bm25")
    shot(page, "51-knowledge-search")

    fake.default = Reply(text="Thirty days [1].")
    auth = {"authorization": f"Bearer {MASTER}"}
    with httpx.Client(base_url=gw.base, headers=auth, timeout=60) as c:
        body = {
            "model": "gpt-4o-mini",
            "knowledge_base": {"name": "handbook", "top_k": 2},
            "messages": [{"role": "user", "content": "How many vacation days do we get?"}],
        }
        trace_id = c.post("/v1/chat/completions", json=body).headers["x-opsgate-trace-id"]
        for _ in range(150):  # the trace and its grounding score are written in the background
            scores = c.get("/admin/v1/feedback", params={"trace_id": trace_id}).json()["data"]
            if scores:
                break
            time.sleep(0.2)
    page.goto(f"{gw.base}/ui/traces/{trace_id}")
    expect(page.locator("table.spans")).to_contain_text("retrieval")
    expect(page.locator("table.spans")).to_contain_text("vacation.md#0")
    expect(page.locator("#scores")).to_contain_text("grounding")
    shot(page, "52-cited-trace")
    assert errors == []
