"""The dashboard's eval pages over HTTP against a real gateway: the runs list in the caller's
scope, a run's examples filtered by a failing scorer, two runs side by side, bad filters as
400, another team's run as 404; the Overview's hallucination-rate panel from online scores;
the trace page's confidence and malformed flag."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.access.helpers import MASTER, Client, config_data, seed
from tests.evals.test_admin_api import wait_done
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.upstream import FakeUpstream, Reply
from tests.ui.helpers import open_clients, text_of

pytestmark = pytest.mark.integration
CONTEXT = "The office opens at nine and closes at five."
ROWS = [{"input": f"question {i}", "expected": "hello from alpha"} for i in range(6)]


@pytest.fixture
def server(tmp_path: Path, upstreams: dict[str, FakeUpstream]) -> Iterator[GatewayServer]:
    data: dict[str, Any] = config_data(upstreams["alpha"])
    data["feedback"] = {"metrics": {"hallucination": {"type": "boolean", "optimize": "min"}},
                        "flush_interval": 0.05}  # fmt: skip
    data["evals"] = {"online": [{"model": "gpt-4o", "sample": 1.0, "scorers": ["hallucination"]}]}
    env = {"OPSGATE_DATABASE_URL": f"sqlite:///{tmp_path}/ui.db", "OPSGATE_MASTER_KEY": MASTER}
    with GatewayServer(make_config(data, env)) as gw:
        yield gw


def spec(name: str) -> dict[str, Any]:
    return {"name": name, "dataset": {"rows": ROWS}, "targets": [{"model": "gpt-4o-mini"}],
            "scorers": ["exact", {"type": "contains", "values": ["hello"]}],
            "concurrency": 2}  # fmt: skip


def two_runs(lead: Client, fake: FakeUpstream) -> tuple[str, str]:
    """A run where every answer matches, then one (one call at a time, with a system message
    so no answer comes from the cache) where rows 1, 3 and 5 get another answer."""
    fake.default = Reply()
    base = wait_done(lead, lead.ok("POST", "/admin/v1/evals", spec("base"))["id"])["id"]
    fake.script(*(Reply("a different answer") if i % 2 else Reply() for i in range(len(ROWS))))
    changed = {**spec("changed"), "concurrency": 1, "system": "Be brief."}
    run = wait_done(lead, lead.ok("POST", "/admin/v1/evals", changed)["id"])["id"]
    return base, run


def test_eval_pages(server: GatewayServer, upstreams: dict[str, FakeUpstream]) -> None:
    admin = Client(server.base, MASTER, server)
    world = seed(admin)
    lead = admin.as_(world.keys["team_admin:a"])
    base, run = two_runs(lead, upstreams["alpha"])
    for clients in open_clients(server.base):
        viewer, _ = clients.logged_in(world.keys["viewer:a"])
        listing = text_of(viewer.get("/ui/evals"))
        assert base in listing and run in listing and "Compare side by side" in listing
        other, _ = clients.logged_in(world.keys["viewer:b"])
        assert "No eval runs in your scope yet" in text_of(other.get("/ui/evals"))
        assert other.get(f"/ui/evals/{run}").status_code == 404
        member, _ = clients.logged_in(world.keys["member:a"])  # sees only its own runs
        assert member.get(f"/ui/evals/{base}").status_code == 404

        page = text_of(viewer.get(f"/ui/evals/{run}"))
        assert "6 of 6 rows" in page and "completed" in page
        failing = viewer.get(f"/ui/evals/{run}", params={"failing": "exact"})
        assert failing.status_code == 200
        text = text_of(failing)
        assert "3 of 6 rows" in text
        assert text.count('class="result-row"') == 3
        assert "question" not in text  # outputs and inputs are not on the page
        loose = text_of(viewer.get(f"/ui/evals/{run}", params={"failing": "contains"}))
        assert "3 of 6 rows" in loose  # "a different answer" has no "hello" either
        assert "0 of 6 rows" in text_of(
            viewer.get(f"/ui/evals/{base}", params={"failing": "exact"})
        )
        for bad in ({"failing": "nope"}, {"below": "2"}, {"status": "odd"}, {"target": "x"}):
            assert viewer.get(f"/ui/evals/{run}", params=bad).status_code == 400, bad

        compared = viewer.get("/ui/evals/compare", params={"base": base, "run": run})
        assert compared.status_code == 200, compared.text
        text = text_of(compared)
        table = text.split("Side by side")[0]
        assert "-0.500" in table and "1.000" in table and "0.500" in table
        assert text.count('class="pair-row') == 6
        only = viewer.get("/ui/evals/compare", params={"base": base, "run": run, "changed": "1"})
        assert text_of(only).count('class="pair-row changed"') == 3
        assert "3 of 6 rows" in text_of(only)
        assert viewer.get("/ui/evals/compare", params={"base": base}).status_code == 400
        missing = viewer.get("/ui/evals/compare", params={"base": base, "run": "eval_nope"})
        assert missing.status_code == 404


def test_hallucination_panel_and_trace_confidence(
    server: GatewayServer, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    messages = [{"role": "system", "content": CONTEXT}, {"role": "user", "content": "When?"}]
    headers = {"authorization": f"Bearer {MASTER}"}
    with httpx.Client(base_url=server.base, headers=headers, timeout=30) as http:
        fake.script(Reply("It opens at nine."), Reply("It opens at noon on Sundays only."))
        for i in range(2):
            body = {"model": "gpt-4o", "messages": [*messages, {"role": "user", "content": str(i)}]}
            assert http.post("/v1/chat/completions", json=body).status_code == 200
        fake.script(Reply("one two", logprobs=(-0.25, -1.5), finish_reason="length"))
        asked = {"model": "gpt-4o-mini", "messages": messages, "logprobs": True}
        trace_id = http.post("/v1/chat/completions", json=asked).headers["x-opsgate-trace-id"]
    online = server.gateway.online
    deadline = time.monotonic() + 20
    while online.stats.recorded < 2:
        assert time.monotonic() < deadline, online.stats
        time.sleep(0.05)
    admin_api = Client(server.base, MASTER, server)
    while admin_api.call("GET", f"/admin/v1/traces/{trace_id}").status_code != 200:
        assert time.monotonic() < deadline + 10, "the trace was never stored"
        time.sleep(0.05)
    for clients in open_clients(server.base):
        admin, _ = clients.logged_in(MASTER)
        deadline = time.monotonic() + 10
        while True:  # the score writer flushes in the background
            panel = text_of(admin.get("/ui/overview/hallucination", headers={"hx-request": "1"}))
            if "of 2" in panel or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert "gpt-4o" in panel and "50.0%" in panel and "of 2" in panel, panel
        assert 'id="hallucination"' in text_of(admin.get("/ui/overview"))
        trace = text_of(admin.get(f"/ui/traces/{trace_id}"))
        assert "mean logprob -0.875" in trace and "least -1.500" in trace
        assert "truncated" in trace
