"""The prompt registry end to end in real headless Chromium: push two versions with the CLI,
diff them side by side on the Prompts page, run the playground, promote version 2 with the
label form, and see per-version metrics after some traffic. Screenshots go to
test-output/ui-screenshots/ (20-... .png)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.cli.test_cli import run
from tests.prompts.helpers import system_text
from tests.ui.test_browser import _login, _page, browser, shot
from tests.ui.test_prompts_pages import MASTER, World, start_world, stored, traffic

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.integration
__all__ = ["browser"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = start_world(tmp_path, prompts=False)
    try:
        yield w
    finally:
        w.server.stop()


def cli_push(world: World, file: Path, *options: str) -> None:
    env = {"OPSGATE_MASTER_KEY": MASTER, "OPSGATE_ADMIN_KEY": ""}
    out = run(
        "prompts",
        "push",
        str(file),
        "--team",
        "ml",
        "--url",
        world.server.base,
        *options,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr


def test_push_diff_playground_promote_and_metrics(
    browser: Browser, world: World, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    file = tmp_path / "triage.yaml"
    file.write_text(yaml.safe_dump({"name": "triage", **system_text(1)}, sort_keys=False))
    cli_push(world, file, "--label", "production", "-m", "first")
    file.write_text(yaml.safe_dump({"name": "triage", **system_text(2)}, sort_keys=False))
    cli_push(world, file, "-m", "sharper wording")

    errors: list[str] = []
    page = _page(browser, errors)
    _login(page, world.server.base, MASTER)
    page.click("nav >> text=Prompts")
    expect(page.locator("table.prompts")).to_contain_text("production → v1")
    shot(page, "20-prompts")
    page.click("a.prompt-link >> text=triage")
    page.wait_for_selector("table.diff")
    changed = page.locator("table.diff tr.diff-replace")
    expect(changed.first).to_be_visible()
    assert "[v1]" in changed.first.locator("td.left").inner_text()
    assert "[v2]" in changed.first.locator("td.right").inner_text()
    expect(page.locator("#version-2")).to_contain_text("sharper wording")
    shot(page, "21-prompt-diff")

    page.select_option("#playground-form select[name=version]", "2")
    page.fill("#playground-form textarea[name='var.ticket']", "printer is on fire")
    page.click("#playground-form button[value=run]")
    page.wait_for_selector("#playground-result pre.answer")
    expect(page.locator("#playground-result")).to_contain_text("Ticket: printer is on fire")
    expect(page.locator("#playground-result")).to_contain_text("[v2] You triage")
    shot(page, "22-prompt-playground")

    page.fill("#move-label input[name=label]", "production")
    page.select_option("#move-label select[name=version]", "2")
    page.click("#move-label button[type=submit]")
    expect(page.locator("#moved")).to_contain_text("Moved production to version 2")
    expect(page.locator("#label-production .label-version")).to_have_text("v2")

    traffic(world, world.member, 3, model="prompt:triage")
    traffic(world, world.member, 2, model="prompt:triage@1")
    stored(world, 5)
    page.goto(f"{world.server.base}/ui/prompts/triage?team_id=ml&range=1h")
    # The master key's playground run is traced to the master (no team), not to team ml.
    expect(page.locator("#version-2 .metric-requests")).to_have_text("3")
    expect(page.locator("#version-1 .metric-requests")).to_have_text("2")
    assert page.locator("#version-2 .metric-p95").inner_text().endswith("ms")
    expect(page.locator("#history")).to_contain_text("master")
    shot(page, "23-prompt-metrics")
    page.context.close()
    assert errors == [], f"browser errors: {errors}"
