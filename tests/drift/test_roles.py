"""Every role against every drift route: 403 before any look-up for a role without the
permission, anything but 403 for one with it. `DRIFT_ROUTES` also feeds the access tests'
check that every admin route has a row in a role table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.access.conftest import GatewayStarter, access_gateway, database_url  # noqa: F401
from tests.access.helpers import ROLES, seed

pytestmark = pytest.mark.integration

MANAGERS = frozenset({"admin", "team_admin"})
READERS = frozenset({"admin", "team_admin", "viewer"})
BODY_READERS = frozenset({"admin", "team_admin"})  # drift:read and traces:read_bodies
B = "/admin/v1/drift"
DRIFT_ROUTES: list[tuple[str, str, frozenset[str]]] = [
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
    callers = {"master": master.key}
    callers |= {role: world.keys[f"{role}:{'-' if role == 'admin' else 'a'}"] for role in ROLES}
    wrong = []
    for method, template, allowed in DRIFT_ROUTES:
        path = template.format(name="nope", proposal_id="nope", result_id="nope")
        for name, key in callers.items():
            body = BODIES.get((method, template))
            resp = master.call(method, path, body, key=key)
            want_ok = name == "master" or name in allowed
            if want_ok == (resp.status_code == 403):
                wrong.append(
                    f"{name:10} {method:6} {template}: {resp.status_code} {resp.text[:100]}"
                )
    assert not wrong, "role x route mismatches:\n" + "\n".join(wrong)
