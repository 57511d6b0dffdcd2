"""Every role against every tuning route: 403 before any look-up for a role without the
permission, anything but 403 for one with it. `TUNING_ROUTES` also feeds the access tests'
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
J, A = "/admin/v1/tuning/jobs", "/admin/v1/adapters"
D = "/admin/v1/tuning/distill"
TUNING_ROUTES: list[Route] = [
    ("POST", J, MANAGERS),  # tuning:manage and datasets:read
    ("GET", J, READERS),
    ("GET", J + "/{job_id}", READERS),
    ("GET", J + "/{job_id}/logs", READERS),
    ("POST", J + "/{job_id}/cancel", MANAGERS),
    ("POST", J + "/{job_id}/resume", MANAGERS),
    ("GET", A, READERS),
    ("GET", A + "/{name}", READERS),
    ("DELETE", A + "/{name}", MANAGERS),
    ("POST", A + "/{name}/promote", MANAGERS),
    ("POST", A + "/{name}/demote", MANAGERS),
    ("POST", D, MANAGERS),  # also datasets:read, datasets:manage and models:call
    ("GET", D, READERS),
    ("GET", D + "/{distill_id}", READERS),
]
BODIES: dict[tuple[str, str], Any] = {
    ("POST", J): {"dataset": "nope", "base": "/nonexistent", "adapter": "x"},
    ("POST", A + "/{name}/promote"): {"model": "nope"},
    ("POST", A + "/{name}/demote"): {"model": "nope"},
    ("POST", D): {"teacher": "nope", "dataset": "nope", "student": "/nonexistent", "adapter": "x"},
}


def test_every_role_against_every_tuning_route(
    access_gateway: GatewayStarter,  # noqa: F811
    database_url: str,  # noqa: F811
) -> None:
    master = access_gateway(database_url)
    world = seed(master)
    callers = role_callers(master.key or "", world.keys)

    def call(method: str, template: str, who: str, key: str, allowed: bool) -> httpx.Response:
        path = template.format(job_id="tj_nope", name="nope", distill_id="dst_nope")
        resp = master.call(method, path, BODIES.get((method, template)), key=key)
        assert resp.status_code < 500, resp.text
        return resp

    assert_role_matrix(TUNING_ROUTES, callers, call, refused_only=True)
