"""Every role against every knowledge-base route: allowed roles get 200/201, the others a 403
before anything is looked up. `KNOWLEDGE_ROUTES` also feeds the access tests' check that every
admin route has a row in a role table."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.access.helpers import Client, seed
from tests.conftest import GatewayFactory
from tests.fixtures.roles import Route, assert_role_matrix, role_callers
from tests.fixtures.upstream import FakeUpstream
from tests.rag.helpers import KB, MASTER, start

pytestmark = pytest.mark.integration

EVERYONE = frozenset({"admin", "team_admin", "member", "viewer", "service"})
MANAGERS = frozenset({"admin", "team_admin"})
ONE = KB + "/{name}"

KNOWLEDGE_ROUTES: list[Route] = [
    ("GET", KB, EVERYONE),
    ("POST", KB, MANAGERS),
    ("GET", ONE, EVERYONE),
    ("DELETE", ONE, MANAGERS),
    ("POST", ONE + "/documents", MANAGERS),
    ("GET", ONE + "/documents", EVERYONE),
    ("DELETE", ONE + "/documents", MANAGERS),
    ("POST", ONE + "/search", EVERYONE),
]


class World:
    """A fresh knowledge base of team A (with one document) for each call that needs one."""

    def __init__(self, admin: Client) -> None:
        self.admin, self.n = admin, 0

    def fresh(self) -> str:
        self.n += 1
        name = f"kb{self.n}"
        self.admin.ok("POST", KB, {"name": name, "team_id": "team-a"})
        doc = {"documents": [{"path": "a.md", "text": "alpha beta"}]}
        self.admin.ok("POST", f"{KB}/{name}/documents?team_id=team-a", doc)
        return name

    def prepare(self, method: str, template: str) -> tuple[str, Any]:
        if template == KB:
            self.n += 1
            return KB, {"name": f"new{self.n}"} if method == "POST" else None
        path = template.format(name=self.fresh())
        if template.endswith("/documents") and method == "POST":
            return path, {"documents": [{"path": "b.md", "text": "gamma"}]}
        if template.endswith("/documents") and method == "DELETE":
            return path + "?path=a.md", None
        if template.endswith("/search"):
            return path, {"query": "alpha"}
        return path, None


def test_every_role_against_every_knowledge_route(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = start(gateway, upstreams["alpha"])
    admin = Client(gw.base, MASTER, gw)
    world_keys = seed(admin)
    world = World(admin)
    callers = role_callers(MASTER, world_keys.keys)

    def call(method: str, template: str, who: str, key: str, allowed: bool) -> httpx.Response:
        if allowed:
            path, body = world.prepare(method, template)
            if who == "admin" and template != KB:
                path += ("&" if "?" in path else "?") + "team_id=team-a"
        else:
            path, body = template.format(name="kb1"), None
        return admin.as_(key).call(method, path, body)

    assert_role_matrix(KNOWLEDGE_ROUTES, callers, call)
    team_b = admin.as_(world_keys.keys["viewer:b"])
    seen = team_b.ok("GET", KB)["data"]
    assert seen and {b["team_id"] for b in seen} == {None}  # shared bases only, none of team A
    assert team_b.call("GET", f"{KB}/kb1").status_code == 404
