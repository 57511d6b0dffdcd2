"""Every role against every admin endpoint, on a real gateway: allowed (2xx) or 403.

The expected table is written out here, independently of `PERMISSIONS`, so changing who may do
what needs a deliberate edit in both places (and in docs/access.md).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.access.conftest import GatewayStarter
from tests.access.helpers import ROLES, Client, World, seed
from tests.drift.test_roles import DRIFT_ROUTES
from tests.evals.test_roles import EVAL_ROUTES
from tests.experiments.test_roles import EXPERIMENT_ROUTES
from tests.feedback.test_review_roles import LOOP_ROUTES
from tests.fixtures.roles import assert_role_matrix, role_callers
from tests.rag.test_roles import KNOWLEDGE_ROUTES
from tests.tuning.test_roles import TUNING_ROUTES

pytestmark = pytest.mark.integration

EVERYONE = frozenset(ROLES)
ADMIN = frozenset({"admin"})
MANAGERS = frozenset({"admin", "team_admin"})
READERS = frozenset({"admin", "team_admin", "viewer"})
TRACE_READERS = frozenset({"admin", "team_admin", "member", "viewer"})
BODY_READERS = frozenset({"admin", "team_admin", "member"})

Body = Callable[[], Any] | None
EVAL_SPEC = {
    "name": "roles",
    "dataset": {"rows": [{"input": "hi"}]},
    "targets": [{"model": "gpt-4o-mini"}],
    "scorers": ["exact"],
}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# (method, path, roles allowed besides the master key, body factory)
ACCESS_ROUTES: list[tuple[str, str, frozenset[str], Body]] = [
    ("GET", "/admin/v1/whoami", EVERYONE, None),
    ("GET", "/admin/v1/openapi.json", EVERYONE, None),
    ("POST", "/admin/v1/keys", MANAGERS, lambda: {"role": "member", "team_id": "team-a"}),
    ("GET", "/admin/v1/keys", MANAGERS, None),
    ("GET", "/admin/v1/keys/{key}", MANAGERS, None),
    ("PATCH", "/admin/v1/keys/{key}", MANAGERS, lambda: {"alias": "renamed"}),
    ("POST", "/admin/v1/keys/{key}/revoke", MANAGERS, None),
    ("POST", "/admin/v1/keys/{key}/rotate", MANAGERS, lambda: {"grace": "1h"}),
    ("GET", "/admin/v1/teams", READERS, None),
    ("POST", "/admin/v1/teams", ADMIN, lambda: {"name": _unique("team")}),
    ("GET", "/admin/v1/teams/team-a", READERS, None),
    ("PATCH", "/admin/v1/teams/team-a", ADMIN, lambda: {"metadata": {"k": "v"}}),
    ("DELETE", "/admin/v1/teams/{empty_team}", ADMIN, None),
    ("GET", "/admin/v1/teams/team-a/budget", READERS, None),
    ("PUT", "/admin/v1/teams/team-a/budget", ADMIN, lambda: {"budget": {"max_usd": "10"}}),
    ("GET", "/admin/v1/budgets", READERS, None),
    ("GET", "/admin/v1/users", MANAGERS, None),
    ("POST", "/admin/v1/users", ADMIN, lambda: {"team_id": "team-a"}),
    ("GET", "/admin/v1/users/user-a", MANAGERS, None),
    ("PATCH", "/admin/v1/users/user-a", ADMIN, lambda: {"name": "Ada"}),
    ("DELETE", "/admin/v1/users/{fresh_user}", ADMIN, None),
    ("POST", "/admin/v1/config/reload", ADMIN, None),
    ("GET", "/admin/v1/deployments", READERS, None),
    ("GET", "/admin/v1/alerts", ADMIN, None),
    ("GET", "/admin/v1/cache", ADMIN, None),
    ("POST", "/admin/v1/cache/purge", ADMIN, lambda: {"namespace": "team:team-b"}),
    ("DELETE", "/admin/v1/cache/entries/no-such-entry", ADMIN, None),
    ("POST", "/admin/v1/cache/erase", ADMIN, lambda: {"end_user": "someone"}),
    ("GET", "/admin/v1/end-users/eu-nobody/export", ADMIN, None),
    ("DELETE", "/admin/v1/end-users/eu-nobody", ADMIN, None),
    ("GET", "/admin/v1/audit", ADMIN, None),
    ("POST", "/admin/v1/audit/verify", ADMIN, None),
    ("GET", "/admin/v1/evals", TRACE_READERS, None),
    ("POST", "/admin/v1/evals", BODY_READERS, lambda: EVAL_SPEC),
]

PROMPT_READERS = frozenset({"admin", "team_admin", "member", "viewer"})
PROMPT_WRITERS = frozenset({"admin", "team_admin", "member"})
_P = "/admin/v1/prompts/triage"
_TEAM_A = "?team_id=team-a"
PROMPT_SPEC: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "variables": {"ticket": {"type": "string"}},
    "messages": [{"role": "user", "content": "Ticket: {{ ticket }}"}],
}
PROMPT_ROUTES: list[tuple[str, str, frozenset[str], Body]] = [
    (
        "POST",
        "/admin/v1/prompts",
        PROMPT_WRITERS,
        lambda: {"name": _unique("p"), "team_id": "team-a", **PROMPT_SPEC},
    ),
    ("GET", "/admin/v1/prompts", PROMPT_READERS, None),
    ("GET", _P + _TEAM_A, PROMPT_READERS, None),
    ("GET", _P + "/versions" + _TEAM_A, PROMPT_READERS, None),
    ("GET", _P + "/diff" + _TEAM_A + "&from=1&to=2", PROMPT_READERS, None),
    ("GET", _P + "/labels" + _TEAM_A, PROMPT_READERS, None),
    ("GET", _P + "/history" + _TEAM_A, PROMPT_READERS, None),
    ("GET", _P + "/metrics" + _TEAM_A, READERS, None),
    (
        "POST",
        _P + "/render" + _TEAM_A,
        PROMPT_READERS,
        lambda: {"version": 1, "variables": {"ticket": "x"}},
    ),
    ("POST", _P + "/labels/staging" + _TEAM_A, PROMPT_WRITERS, lambda: {"version": 1}),
    ("POST", _P + "/labels/staging/rollback" + _TEAM_A, PROMPT_WRITERS, None),
    ("POST", _P + "/labels/production" + _TEAM_A, MANAGERS, lambda: {"version": 2}),
]
"""Prompts of team A (`triage`: versions 1 and 2, staging moved 1 -> 2): `prompts:read`,
`prompts:write`, and moving `production` only with `prompts:promote`."""

TRACE_ROUTES: list[tuple[str, str, frozenset[str], Body]] = [
    ("GET", "/admin/v1/traces", TRACE_READERS, None),
    ("GET", "/admin/v1/traces/{trace}", TRACE_READERS, None),
    ("GET", "/admin/v1/traces/{trace}?include_bodies=true", BODY_READERS, None),
    ("GET", "/admin/v1/usage", READERS, None),
    ("GET", "/admin/v1/feedback", TRACE_READERS, None),
]


def _path(master: Client, template: str, trace_id: str) -> str:
    """The route's path with fresh rows inside team A, so every case starts the same."""
    values = {"trace": trace_id}
    if "{key}" in template:
        body = {"team_id": "team-a", "user_id": "user-a"}
        values["key"] = master.ok("POST", "/admin/v1/keys", body)["id"]
    if "{empty_team}" in template:
        body = {"name": _unique("empty")}
        values["empty_team"] = master.ok("POST", "/admin/v1/teams", body)["id"]
    if "{fresh_user}" in template:
        values["fresh_user"] = master.ok("POST", "/admin/v1/users", {"team_id": "team-a"})["id"]
    return template.format(**values)


def _check_matrix(
    master: Client, world: World, routes: list[tuple[str, str, frozenset[str], Body]], trace: str
) -> None:
    """Every role against `routes` (tests/fixtures/roles.py), each on fresh rows; a refused
    call is also a `permission_error`."""
    bodies = {(method, template): body for method, template, _, body in routes}

    def call(method: str, template: str, who: str, key: str, allowed: bool) -> httpx.Response:
        body = bodies[(method, template)]
        path = _path(master, template, trace)
        resp = master.call(method, path, body() if body else None, key=key)
        if not allowed and resp.status_code == 403:
            assert resp.json()["error"]["type"] == "permission_error"
        return resp

    matrix = [(method, template, allowed) for method, template, allowed, _ in routes]
    assert_role_matrix(matrix, role_callers(master.key or "", world.keys), call)


def test_every_role_against_every_access_route(
    access_gateway: GatewayStarter, database_url: str
) -> None:
    master = access_gateway(database_url)
    world = seed(master)
    _check_matrix(master, world, ACCESS_ROUTES, "")


def _trace_of(master: Client, world: World) -> str:
    assert master.chat(key=world.keys["member:a"]).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = master.ok("GET", "/admin/v1/traces", params={"team_id": "team-a"})["data"]
        if found:
            return str(found[0]["id"])
        time.sleep(0.05)
    raise AssertionError("the trace never reached the store")


def test_every_role_against_every_trace_route(
    access_gateway: GatewayStarter, database_url: str
) -> None:
    master = access_gateway(database_url)
    world = seed(master)
    _check_matrix(master, world, TRACE_ROUTES, _trace_of(master, world))


def test_every_role_against_every_prompt_route(
    access_gateway: GatewayStarter, database_url: str
) -> None:
    master = access_gateway(database_url)
    world = seed(master)
    for version in (1, 2):
        spec = {
            **PROMPT_SPEC,
            "messages": [{"role": "user", "content": f"v{version} {{{{ ticket }}}}"}],
        }
        master.ok(
            "POST",
            "/admin/v1/prompts",
            {"name": "triage", "team_id": "team-a", **spec, "labels": ["staging"]},
        )
    _check_matrix(master, world, PROMPT_ROUTES, "")


def test_the_matrix_covers_every_admin_route(access_gateway: GatewayStarter, tmp_path: Any) -> None:
    master = access_gateway(f"sqlite:///{tmp_path / 'cover.db'}")
    served = {
        (method.upper(), path)
        for path, ops in master.ok("GET", "/admin/v1/openapi.json")["paths"].items()
        for method in ops
    }
    names = {"{key}": "{key_id}", "{empty_team}": "{team_id}", "{fresh_user}": "{user_id}"}
    names |= {"{trace}": "{trace_id}", "team-a": "{team_id}", "user-a": "{user_id}"}
    names |= {"no-such-entry": "{key}", "eu-nobody": "{end_user}"}
    names |= {"/triage": "/{name}", "/staging": "/{label}", "/production": "/{label}"}
    tested = set()
    for method, template, _, _ in ACCESS_ROUTES + TRACE_ROUTES + PROMPT_ROUTES:
        template = template.split("?")[0] if template.startswith(_P) else template
        for old, new in names.items():
            template = template.replace(old, new)
        tested.add((method, template))
    tested |= {(method, path) for method, path, _ in LOOP_ROUTES}  # tests/feedback, own matrix
    tested |= {(method, path) for method, path, _ in EXPERIMENT_ROUTES}  # tests/experiments
    tested |= {(method, path) for method, path, _ in KNOWLEDGE_ROUTES}  # tests/rag
    tested |= {(method, path) for method, path, _ in DRIFT_ROUTES}  # tests/drift
    tested |= {(method, path) for method, path, _ in EVAL_ROUTES}  # tests/evals
    tested |= {(method, path) for method, path, _ in TUNING_ROUTES}  # tests/tuning
    missing = served - tested
    assert not missing, f"admin routes without a row in the role table: {sorted(missing)}"
