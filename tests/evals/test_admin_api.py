"""`/admin/v1/evals` on a real gateway: runs with the caller's key and scope, results,
compare, cancel and resume, bad input as 4xx."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.access.conftest import GatewayStarter, access_gateway  # noqa: F401 (fixture)
from tests.access.helpers import Client, World, seed
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration

ROWS = [{"input": f"question {i}", "expected": "hello from alpha"} for i in range(6)]


def spec(rows: list[dict[str, Any]] = ROWS, **extra: Any) -> dict[str, Any]:
    return {"name": "api", "dataset": {"rows": rows}, "targets": [{"model": "gpt-4o-mini"}],
            "scorers": ["exact"], "concurrency": 2, **extra}  # fmt: skip


def wait_done(client: Client, run_id: str, within: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        run: dict[str, Any] = client.ok("GET", f"/admin/v1/evals/{run_id}")
        if run["status"] != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


@pytest.fixture
def world(access_gateway: GatewayStarter, tmp_path: Path) -> tuple[Client, World]:  # noqa: F811
    admin = access_gateway(f"sqlite:///{tmp_path}/opsgate.db")
    return admin, seed(admin)


def test_a_member_runs_an_eval_with_its_own_key(
    world: tuple[Client, World], upstreams: dict[str, FakeUpstream]
) -> None:
    admin, w = world
    member = admin.as_(w.keys["member:a"])
    started = member.call("POST", "/admin/v1/evals", spec())
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "running" and body["spec"]["dataset"]["rows"] == 6
    assert (body["owner"], body["team_id"]) == (w.key_ids["member:a"], "team-a"), body
    assert body["user_id"] == "user-a", body
    run = wait_done(member, body["id"])
    assert run["status"] == "completed" and run["rows_done"] == 6
    assert run["summary"]["targets"]["gpt-4o-mini"]["scorers"]["exact"]["mean"] == 1.0
    assert len(upstreams["alpha"].requests) == 6
    deadline = time.monotonic() + 20  # traces are stored by a background writer
    while True:
        traces = admin.ok("GET", "/admin/v1/traces", params={"limit": "50"})["data"]
        mine = sum(t["key_id"] == w.key_ids["member:a"] for t in traces)
        if mine >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert mine >= 6  # the member's calls
    results = member.ok("GET", f"/admin/v1/evals/{body['id']}/results")["data"]
    assert [r["row_index"] for r in results] == list(range(6))
    assert all(r["trace_id"] and r["scores"]["exact"]["value"] == 1.0 for r in results)
    # scope: team A sees it, team B and another member's view do not
    assert admin.as_(w.keys["team_admin:a"]).call("GET", f"/admin/v1/evals/{body['id']}").is_success
    for other in ("viewer:b", "team_admin:b"):
        resp = admin.as_(w.keys[other]).call("GET", f"/admin/v1/evals/{body['id']}")
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "eval_run_not_found"
    assert admin.as_(w.keys["viewer:b"]).ok("GET", "/admin/v1/evals")["data"] == []
    listed = admin.ok("GET", "/admin/v1/evals")["data"]
    assert [r["id"] for r in listed] == [body["id"]]


def test_permissions_and_bad_input(world: tuple[Client, World]) -> None:
    admin, w = world
    viewer = admin.as_(w.keys["viewer:a"])
    assert viewer.call("POST", "/admin/v1/evals", spec()).status_code == 403
    assert admin.as_(w.keys["service:a"]).call("GET", "/admin/v1/evals").status_code == 403
    cases = [
        (spec(scorers=["nope"]), 400, "invalid_scorer"),
        (spec(targets=[{"model": "no-such-model"}]), 400, "unknown_target"),
        ({**spec(), "dataset": {"file": "/etc/passwd"}}, 400, "invalid_eval_spec"),
        ({"name": "x"}, 400, "invalid_eval_spec"),
        ({**spec(), "dataset": {"rows": []}}, 400, "invalid_eval_spec"),
    ]
    for body, status, code in cases:
        resp = admin.call("POST", "/admin/v1/evals", body)
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]["code"] == code
    assert admin.call("GET", "/admin/v1/evals/eval_nope").status_code == 404
    assert admin.call("GET", "/admin/v1/evals", params={"limit": "0"}).status_code == 400


def test_cancel_resume_and_compare(
    world: tuple[Client, World], upstreams: dict[str, FakeUpstream]
) -> None:
    admin, _ = world
    upstreams["alpha"].default = Reply(delay=0.2)
    rows = [{"input": f"q{i}", "expected": "hello from alpha"} for i in range(30)]
    run = admin.ok("POST", "/admin/v1/evals", spec(rows, concurrency=1))
    time.sleep(0.5)
    cancelled = admin.ok("POST", f"/admin/v1/evals/{run['id']}/cancel")
    assert cancelled["status"] == "cancelled" and 0 < cancelled["rows_done"] < 30
    again = admin.call("POST", f"/admin/v1/evals/{run['id']}/cancel")
    assert again.status_code == 409
    upstreams["alpha"].default = Reply()
    resumed = admin.ok("POST", f"/admin/v1/evals/{run['id']}/resume")
    assert resumed["status"] == "running"
    done = wait_done(admin, run["id"])
    assert done["status"] == "completed" and done["rows_done"] == 30
    assert len(upstreams["alpha"].requests) == 30  # nothing asked twice
    assert admin.call("POST", f"/admin/v1/evals/{run['id']}/resume").status_code == 409
    upstreams["alpha"].default = Reply("something else")
    other = wait_done(admin, admin.ok("POST", "/admin/v1/evals", spec(rows))["id"])
    compared = admin.ok("GET", f"/admin/v1/evals/{other['id']}/compare",
                        params={"base": run["id"]})["data"]  # fmt: skip
    (exact,) = compared
    assert (exact["n"], exact["mean_a"], exact["mean_b"], exact["significant"]) == (
        30, 1.0, 0.0, True,
    )  # fmt: skip
    assert admin.call("GET", f"/admin/v1/evals/{other['id']}/compare").status_code == 400
