"""Every role against every experiment route: allowed roles get 200/201, the others a 403
before anything is looked up; team roles see only their team's experiments. `EXPERIMENT_ROUTES`
also feeds the access tests' check that every admin route has a row in a role table."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.access.helpers import MASTER, Client, seed
from tests.conftest import GatewayFactory
from tests.experiments.helpers import BASE, experiment, start
from tests.fixtures.roles import Route, assert_role_matrix, role_callers
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration

READERS = frozenset({"admin", "team_admin", "member", "viewer"})
MANAGERS = frozenset({"admin", "team_admin"})
ONE = BASE + "/{name}"

EXPERIMENT_ROUTES: list[Route] = [
    ("GET", BASE, READERS),
    ("POST", BASE, MANAGERS),
    ("GET", ONE, READERS),
    ("POST", ONE + "/pause", MANAGERS),
    ("POST", ONE + "/resume", MANAGERS),
    ("POST", ONE + "/stop", MANAGERS),
    ("POST", ONE + "/promote", MANAGERS),
]


class World:
    """A fresh experiment of team A for each call (a thin slot of one exclusion group, so
    they never overlap)."""

    def __init__(self, admin: Client) -> None:
        self.admin, self.n = admin, 0

    def spec(self) -> dict[str, Any]:
        self.n += 1
        return experiment(
            name=f"e{self.n}",
            traffic={"model": "gpt-4o-mini", "team_id": "team-a"},
            exclusion_group="roles",
            share=0.01,
        )

    def prepare(self, method: str, template: str) -> tuple[str, Any]:
        if template == BASE:
            return BASE, self.spec() if method == "POST" else None
        name = self.admin.ok("POST", BASE, self.spec())["name"]
        if template.endswith("/resume"):
            self.admin.ok("POST", f"{BASE}/{name}/pause")
        body = {"variant": "b"} if template.endswith("/promote") else None
        return template.format(name=name), body


def test_every_role_against_every_experiment_route(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = start(gateway, upstreams["alpha"], upstreams["beta"], env={"OPSGATE_MASTER_KEY": MASTER})
    admin = Client(gw.base, MASTER, gw)
    world_keys = seed(admin)
    world = World(admin)
    callers = role_callers(MASTER, world_keys.keys)

    def call(method: str, template: str, who: str, key: str, allowed: bool) -> httpx.Response:
        if allowed:
            path, body = world.prepare(method, template)
        else:
            path, body = template.format(name="e1"), None
        return admin.as_(key).call(method, path, body)

    assert_role_matrix(EXPERIMENT_ROUTES, callers, call)
    # team B's keys see none of team A's experiments
    team_b = admin.as_(world_keys.keys["viewer:b"])
    assert team_b.ok("GET", BASE)["data"] == []
    assert team_b.call("GET", f"{BASE}/e1").status_code == 404
