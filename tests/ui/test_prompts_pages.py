"""The Prompts page over HTTP on a real gateway: the list, a prompt's labels, versions with
their metrics, the diff and history; moving and rolling back labels through the forms (audited,
CSRF-checked, `production` only with `prompts:promote`); the playground rendering and running a
version through the gateway, traced as such."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fixtures.gateway import GatewayServer, make_config
from tests.prompts.helpers import system_text
from tests.ui.helpers import Clients, csrf_of, open_clients, text_of

pytestmark = pytest.mark.integration
MASTER = "mk-prompts-ui-test-0123456789"
SIM = {"provider": "simulator", "model": "sim-1", "price": {"input": 10, "output": 20}}
FAST = {"ttft_ms": 2, "token_ms": 0.2}
CONFIG: dict[str, Any] = {
    "models": [
        {"name": "gpt-4o-mini", "deployments": [{**SIM, "id": "sim-a", "options": FAST}]},
        {"name": "chat-alt", "deployments": [{**SIM, "id": "sim-b", "options": FAST}]},
    ],
    "traces": {"flush_interval": 0.05},
}


class World:
    def __init__(self, server: GatewayServer, member: str, viewer: str) -> None:
        self.server, self.member, self.viewer = server, member, viewer

    def admin(self) -> httpx.Client:
        headers = {"authorization": f"Bearer {MASTER}"}
        return httpx.Client(base_url=self.server.base, headers=headers, timeout=20)


def start_world(folder: Path, *, prompts: bool = True) -> World:
    env = {"OPSGATE_DATABASE_URL": f"sqlite:///{folder}/opsgate.db", "OPSGATE_MASTER_KEY": MASTER}
    server = GatewayServer(make_config(CONFIG, env)).start()
    headers = {"authorization": f"Bearer {MASTER}"}
    with httpx.Client(base_url=server.base, headers=headers, timeout=20) as admin:
        admin.post("/admin/v1/teams", json={"id": "ml", "name": "ML"}).raise_for_status()
        keys = {}
        for role in ("member", "viewer"):
            made = admin.post("/admin/v1/keys", json={"role": role, "team_id": "ml"})
            made.raise_for_status()
            keys[role] = made.json()["key"]
        for version in (1, 2) if prompts else ():
            body = {"name": "triage", "team_id": "ml", **system_text(version)}
            body["labels"] = ["production"] if version == 1 else []
            admin.post("/admin/v1/prompts", json=body).raise_for_status()
    return World(server, keys["member"], keys["viewer"])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = start_world(tmp_path)
    try:
        yield w
    finally:
        w.server.stop()


@pytest.fixture
def clients(world: World) -> Iterator[Clients]:
    yield from open_clients(world.server.base)


def stored_trace(world: World, trace_id: str) -> dict[str, Any]:
    """The trace once the background writer stored it (10 s at most)."""
    deadline = time.monotonic() + 10
    with world.admin() as admin:
        while True:
            resp = admin.get(f"/admin/v1/traces/{trace_id}")
            if resp.status_code == 200 or time.monotonic() > deadline:
                assert resp.status_code == 200, resp.text
                found: dict[str, Any] = resp.json()
                return found
            time.sleep(0.05)


def traffic(world: World, key: str, count: int, **extra: Any) -> None:
    with openai.OpenAI(base_url=world.server.url, api_key=key, max_retries=0) as client:
        for i in range(count):
            client.chat.completions.create(
                messages=[], extra_body={"variables": {"ticket": f"t{i}"}}, **extra
            )


def stored(world: World, count: int) -> None:
    """Wait (10 s at most) until team ml's prompt traffic is in the usage rollups."""
    deadline = time.monotonic() + 10
    params = {"prompt_name": "triage", "team_id": "ml", "since": "1h"}
    with world.admin() as admin:
        while True:
            rows = admin.get("/admin/v1/usage", params=params).json()["data"]
            if sum(r["requests"] for r in rows) >= count or time.monotonic() > deadline:
                return
            time.sleep(0.05)


def test_list_detail_metrics_diff_and_history(world: World, clients: Clients) -> None:
    traffic(world, world.member, 3, model="prompt:triage")
    traffic(world, world.member, 2, model="prompt:triage@2")
    stored(world, 5)
    http, _ = clients.logged_in(MASTER)
    listed = http.get("/ui/prompts")
    assert (
        listed.status_code == 200
        and "triage" in listed.text
        and "production → v1" in (text_of(listed))
    )
    page = http.get("/ui/prompts/triage", params={"team_id": "ml", "range": "1h"})
    assert page.status_code == 200, page.text
    text = text_of(page)
    assert 'id="version-2"' in page.text
    rows = {v: page.text.split(f'id="version-{v}"')[1].split("</tr>")[0] for v in (1, 2)}
    assert '<td class="num metric-requests">3</td>' in rows[1]
    assert '<td class="num metric-requests">2</td>' in rows[2]
    assert "[v1] You triage" in text and "[v2] You triage" in text  # the side-by-side diff
    assert 'class="diff-replace"' in page.text
    viewer_http, _ = clients.logged_in(world.viewer)
    seen = viewer_http.get("/ui/prompts/triage")
    assert seen.status_code == 200 and 'id="move-label"' not in seen.text
    assert viewer_http.get("/ui/prompts/other").status_code == 404


def test_label_moves_through_the_forms(world: World, clients: Clients) -> None:
    member_http, member_csrf = clients.logged_in(world.member)
    refused = member_http.post(
        "/ui/prompts/triage/labels",
        data={"csrf_token": member_csrf, "label": "production", "version": "2"},
    )
    assert refused.status_code == 403 and "prompts:promote" in text_of(refused)
    forged = member_http.post(
        "/ui/prompts/triage/labels", data={"csrf_token": "x", "label": "staging", "version": "2"}
    )
    assert forged.status_code == 403
    staged = member_http.post(
        "/ui/prompts/triage/labels",
        data={"csrf_token": member_csrf, "label": "staging", "version": "2"},
        follow_redirects=True,
    )
    assert staged.status_code == 200 and "Moved staging to version 2" in text_of(staged)

    admin_http, csrf = clients.logged_in(MASTER)
    promoted = admin_http.post(
        "/ui/prompts/triage/labels",
        data={"csrf_token": csrf, "team_id": "ml", "label": "production", "version": "2"},
        follow_redirects=True,
    )
    assert promoted.status_code == 200 and "Moved production to version 2" in text_of(promoted)
    back = admin_http.post(
        "/ui/prompts/triage/rollback",
        data={"csrf_token": csrf, "team_id": "ml", "label": "production"},
        follow_redirects=True,
    )
    assert "Moved production to version 1" in text_of(back)
    with world.admin() as admin:
        audit = admin.get("/admin/v1/audit", params={"action": "prompts.label_move"}).json()
    moves = [
        (e["detail"]["label"], e["detail"]["to_version"], e["detail"]["via"]) for e in audit["data"]
    ]
    assert moves[:3] == [
        ("production", 1, "rollback"),
        ("production", 2, "promote"),
        ("staging", 2, "promote"),
    ]


def test_playground_renders_and_runs_traced(world: World, clients: Clients) -> None:
    http, csrf = clients.logged_in(world.member)
    form = {"csrf_token": csrf, "version": "2", "model": "chat-alt", "var.ticket": "{{ tier }}"}
    rendered = http.post("/ui/prompts/triage/playground", data={**form, "action": "render"})
    assert rendered.status_code == 200, rendered.text
    assert "Ticket: {{ tier }}" in text_of(rendered) and 'class="answer"' not in rendered.text
    ran = http.post("/ui/prompts/triage/playground", data={**form, "action": "run"})
    assert ran.status_code == 200, ran.text
    assert 'class="answer"' in ran.text
    trace_id = ran.text.split('class="trace-link" href="/ui/traces/')[1].split('"')[0]
    trace = stored_trace(world, trace_id)
    assert (trace["prompt_name"], trace["prompt_version"], trace["model_requested"]) == (
        "triage",
        "2",
        "chat-alt",
    )
    assert trace["metadata"] == {"source": "playground"} and trace["team_id"] == "ml"
    bad = http.post(
        "/ui/prompts/triage/playground", data={**form, "var.ticket": "", "action": "run"}
    )
    assert bad.status_code == 400 and "missing required variable 'ticket'" in text_of(bad)
    viewer_http, viewer_csrf = clients.logged_in(world.viewer)
    refused = viewer_http.post(
        "/ui/prompts/triage/playground", data={**form, "csrf_token": viewer_csrf, "action": "run"}
    )
    assert refused.status_code == 403
    assert csrf_of(refused.text)
