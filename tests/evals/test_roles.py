"""Every role against every eval route that acts on one run, and the online-scoring status:
allowed roles get 200/201 on a run in their scope (their own, or their team's for a viewer),
the others a 403 before the run is looked up. `EVAL_ROUTES` also feeds the access tests' check
that every admin route has a row in a role table (`GET` and `POST /admin/v1/evals` are in
tests/access/test_roles.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.access.conftest import GatewayStarter, access_gateway  # noqa: F401 (fixture)
from tests.access.helpers import Client, seed
from tests.evals.test_admin_api import wait_done
from tests.fixtures.roles import Route, assert_role_matrix, role_callers
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration

E = "/admin/v1/evals"
RUN = E + "/{run_id}"
ADMIN = frozenset({"admin"})
READERS = frozenset({"admin", "team_admin", "member", "viewer"})
RUNNERS = frozenset({"admin", "team_admin", "member"})

EVAL_ROUTES: list[Route] = [
    ("GET", E + "/online", ADMIN),
    ("GET", RUN, READERS),
    ("GET", RUN + "/results", READERS),
    ("GET", RUN + "/compare", READERS),
    ("POST", RUN + "/cancel", RUNNERS),
    ("POST", RUN + "/resume", RUNNERS),
]


def spec(rows: int = 2) -> dict[str, Any]:
    return {"name": "roles", "dataset": {"rows": [{"input": f"q{i}"} for i in range(rows)]},
            "targets": [{"model": "gpt-4o-mini"}], "scorers": ["exact"],
            "concurrency": 1}  # fmt: skip


class Runs:
    """A fresh run in the caller's scope for each allowed call: started with the caller's own
    key (a viewer, which may not start runs, reads one of its team's)."""

    def __init__(self, master: Client, keys: dict[str, str], fake: FakeUpstream) -> None:
        self.master, self.keys, self.fake = master, keys, fake

    def owner(self, name: str) -> Client:
        key = self.keys["team_admin"] if name == "viewer" else self.keys[name]
        return self.master.as_(key)

    def finished(self, name: str) -> str:
        owner = self.owner(name)
        return str(wait_done(owner, owner.ok("POST", E, spec())["id"])["id"])

    def running(self, name: str) -> str:
        """A run that is still going (its answers are slow) when the call is made."""
        self.fake.default = Reply(delay=0.3)
        owner = self.owner(name)
        return str(owner.ok("POST", E, spec(rows=40))["id"])

    def path(self, method: str, template: str, name: str) -> str:
        if "{run_id}" not in template:
            return template
        if template.endswith("/cancel"):
            return template.format(run_id=self.running(name))
        if template.endswith("/resume"):
            run_id = self.running(name)
            time.sleep(0.2)
            self.master.ok("POST", f"{E}/{run_id}/cancel")
            self.fake.default = Reply()
            return template.format(run_id=run_id)
        self.fake.default = Reply()
        run_id = self.finished(name)
        path = template.format(run_id=run_id)
        return path + f"?base={run_id}" if template.endswith("/compare") else path


def test_every_role_against_every_run_route(
    access_gateway: GatewayStarter,  # noqa: F811
    tmp_path: Path,
    upstreams: dict[str, FakeUpstream],
) -> None:
    master = access_gateway(f"sqlite:///{tmp_path}/roles.db")
    world = seed(master)
    keys = role_callers(master.key or "", world.keys)
    runs = Runs(master, keys, upstreams["alpha"])

    def call(method: str, template: str, who: str, key: str, allowed: bool) -> httpx.Response:
        path = runs.path(method, template, who) if allowed else template.format(run_id="eval_nope")
        return master.call(method, path, key=key)

    try:
        assert_role_matrix(EVAL_ROUTES, keys, call)
    finally:
        upstreams["alpha"].default = Reply()


def test_the_online_status(
    access_gateway: GatewayStarter,  # noqa: F811
    tmp_path: Path,
) -> None:
    master = access_gateway(f"sqlite:///{tmp_path}/status.db")
    status = master.ok("GET", E + "/online")
    assert status["object"] == "evals.online" and status["enabled"] is False
    assert status["rules"] == [] and status["stats"]["queued"] == 0
