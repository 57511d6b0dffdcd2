"""Every role against every drift route: 403 before any look-up for a role without the
permission, anything but 403 for one with it. `DRIFT_ROUTES` also feeds the access tests'
check that every admin route has a row in a role table."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.access.conftest import GatewayStarter, access_gateway, database_url  # noqa: F401
from tests.access.helpers import seed
from tests.fixtures.roles import Route, assert_role_matrix, role_callers

pytestmark = pytest.mark.integration

MANAGERS = frozenset({"admin", "team_admin"})
READERS = frozenset({"admin", "team_admin", "viewer"})
BODY_READERS = frozenset({"admin", "team_admin"})  # drift:read and traces:read_bodies
B = "/admin/v1/drift"
DRIFT_ROUTES: list[Route] = [
    ("GET", B, READERS),
    ("GET", B + "/monitors", READERS),
    ("POST", B + "/monitors", MANAGERS),
    ("GET", B + "/monitors/{name}", READERS),
    ("DELETE", B + "/monitors/{name}", MANAGERS),
    ("GET", B + "/monitors/{name}/results", READERS),
    ("POST", B + "/run", MANAGERS),
    ("GET", B + "/proposals", READERS),
    ("POST", B + "/proposals/{proposal_id}/accept", MANAGERS),
    ("POST", B + "/proposals/{proposal_id}/dismiss", MANAGERS),
    ("GET", B + "/results/{result_id}/examples", BODY_READERS),
]
BODIES: dict[tuple[str, str], Any] = {
    ("POST", B + "/monitors"): {"name": "m", "kind": "stats", "window": 60},
    ("POST", B + "/run"): {"monitors": []},
}


def test_every_role_against_every_drift_route(
    access_gateway: GatewayStarter,  # noqa: F811
    database_url: str,  # noqa: F811
) -> None:
    master = access_gateway(database_url)
    world = seed(master)
    callers = role_callers(master.key or "", world.keys)

    def call(method: str, template: str, who: str, key: str, allowed: bool) -> httpx.Response:
        path = template.format(name="nope", proposal_id="nope", result_id="nope")
        return master.call(method, path, BODIES.get((method, template)), key=key)

    assert_role_matrix(DRIFT_ROUTES, callers, call, refused_only=True)
