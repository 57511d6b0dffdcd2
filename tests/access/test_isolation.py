"""Tenant isolation: a team A key reads nothing of team B (keys, users, teams, budgets, traces,
usage) through any admin endpoint, and changes nothing of it.

"Any endpoint" is taken literally: every GET route the gateway's own OpenAPI document lists is
called with team B's ids substituted, plus list filters that name team B.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.access.conftest import GatewayStarter
from tests.access.helpers import Client, World, seed

pytestmark = pytest.mark.integration

TEAM_A_CALLERS = ("team_admin:a", "viewer:a", "member:a", "service:a")


def _traces_for(master: Client, team: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found: list[dict[str, Any]] = master.ok(
            "GET", "/admin/v1/traces", params={"team_id": team}
        )["data"]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no trace of {team} reached the store")


def _world_with_data(master: Client) -> tuple[World, set[str], dict[str, str]]:
    world = seed(master)
    for team in ("team-a", "team-b"):
        master.ok("PUT", f"/admin/v1/teams/{team}/budget", {"budget": {"max_usd": "25"}})
    master.ok(
        "PATCH",
        f"/admin/v1/keys/{world.key_ids['member:b']}",
        {"budget": {"max_usd": "5"}, "limits": {"rpm": 10}},
    )
    for team in ("a", "b"):
        assert master.chat(key=world.keys[f"member:{team}"]).status_code == 200
    trace_b = _traces_for(master, "team-b")[0]["id"]
    _traces_for(master, "team-a")
    prompt_b = {"name": "triage-b", "team_id": "team-b", "model": "m"}
    master.ok("POST", "/admin/v1/prompts", {**prompt_b, "messages": [
        {"role": "system", "content": "Team B's secret prompt"}]})  # fmt: skip
    secrets_b = {name: key for name, key in world.keys.items() if name.endswith(":b")}
    b_marks = {"team-b", "Team B", "user-b", trace_b, "Team B's secret prompt"}
    b_marks |= {world.key_ids[name] for name in secrets_b} | {k[:11] for k in secrets_b.values()}
    ids = {
        "{key_id}": world.key_ids["member:b"],
        "{team_id}": "team-b",
        "{user_id}": "user-b",
        "{trace_id}": trace_b,
        "{name}": "triage-b",
    }
    return world, b_marks, ids


def _leaks(resp: Any, b_marks: set[str]) -> list[str]:
    if resp.status_code == 503 and "pgvector" in resp.text:
        return []  # knowledge bases on a PostgreSQL without pgvector answer nothing at all
    if resp.status_code not in (200, 403, 404):
        return [f"unexpected status {resp.status_code}: {resp.text[:200]}"]
    if resp.status_code != 200:
        return []
    return [mark for mark in b_marks if mark in resp.text]


def _read_paths(master: Client, ids: dict[str, str]) -> list[str]:
    paths = []
    for path, ops in master.ok("GET", "/admin/v1/openapi.json")["paths"].items():
        if "get" in ops:
            for name, value in ids.items():
                path = path.replace(name, value)
            # Ids of parts the world does not seed (runs, queues, datasets, ...): a well-formed
            # id team A cannot see must answer 403/404 like any unknown one, never 400 or 500.
            path = re.sub(r"\{[a-z_]+\}", "b-unseen-1", path)
            paths.append(path + "?from=1&to=1" if path.endswith("/diff") else path)
    key_b = ids["{key_id}"]
    return [
        *paths,
        "/admin/v1/keys?team_id=team-b",
        "/admin/v1/keys?user_id=user-b",
        "/admin/v1/keys?include_revoked=true",
        "/admin/v1/users?team_id=team-b",
        "/admin/v1/traces?team_id=team-b",
        f"/admin/v1/traces?key_id={key_b}",
        "/admin/v1/traces/" + ids["{trace_id}"] + "?include_bodies=true",
        "/admin/v1/usage?group_by=team",
        "/admin/v1/usage?group_by=key",
        "/admin/v1/usage?team_id=team-b",
    ]


def test_team_a_reads_nothing_of_team_b(access_gateway: GatewayStarter, database_url: str) -> None:
    master = access_gateway(database_url, store_bodies="full")
    world, b_marks, ids = _world_with_data(master)
    paths = _read_paths(master, ids)
    assert any("{" not in p and "/keys/" in p for p in paths)
    leaks = []
    for caller in TEAM_A_CALLERS:
        who = master.as_(world.keys[caller])
        for path in paths:
            found = _leaks(who.call("GET", path), b_marks)
            leaks += [f"{caller} GET {path}: {item}" for item in found]
    assert not leaks, "team B data visible to team A:\n" + "\n".join(leaks)
    # Not vacuous: the same team admin does see its own team's keys, users and budgets.
    own = master.as_(world.keys["team_admin:a"])
    assert world.key_ids["member:a"] in own.call("GET", "/admin/v1/keys").text
    assert "user-a" in own.call("GET", "/admin/v1/users").text
    assert "team-a" in own.call("GET", "/admin/v1/budgets").text


def test_other_teams_ids_answer_404_like_unknown_ids(
    access_gateway: GatewayStarter, database_url: str
) -> None:
    master = access_gateway(database_url)
    world = seed(master)
    team_admin = master.as_(world.keys["team_admin:a"])
    for path, nowhere in (
        (f"/admin/v1/keys/{world.key_ids['member:b']}", "/admin/v1/keys/key_nope"),
        ("/admin/v1/teams/team-b", "/admin/v1/teams/team-nope"),
        ("/admin/v1/teams/team-b/budget", "/admin/v1/teams/team-nope/budget"),
        ("/admin/v1/users/user-b", "/admin/v1/users/user-nope"),
    ):
        theirs, unknown = team_admin.call("GET", path), team_admin.call("GET", nowhere)
        assert theirs.status_code == unknown.status_code == 404, (path, theirs.text)
        assert theirs.json()["error"]["type"] == unknown.json()["error"]["type"]
    denied = team_admin.call("GET", "/admin/v1/keys", params={"team_id": "team-b"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "outside_scope"


def test_team_a_changes_nothing_of_team_b(
    access_gateway: GatewayStarter, database_url: str
) -> None:
    master = access_gateway(database_url)
    world = seed(master)
    key_b = world.key_ids["member:b"]
    attempts: list[tuple[str, str, Any]] = [
        ("PATCH", f"/admin/v1/keys/{key_b}", {"enabled": False}),
        ("POST", f"/admin/v1/keys/{key_b}/revoke", None),
        ("POST", f"/admin/v1/keys/{key_b}/rotate", {"grace": "0s"}),
        ("PUT", "/admin/v1/teams/team-b/budget", {"budget": {"max_usd": "1"}}),
        ("PATCH", "/admin/v1/teams/team-b", {"name": "mine now"}),
        ("DELETE", "/admin/v1/teams/team-b", None),
        ("PATCH", "/admin/v1/users/user-b", {"team_id": "team-a"}),
        ("DELETE", "/admin/v1/users/user-b", None),
        ("POST", "/admin/v1/keys", {"team_id": "team-b"}),
        ("POST", "/admin/v1/keys", {"user_id": "user-b"}),
        ("POST", "/admin/v1/keys", {"role": "admin"}),
    ]
    for caller in TEAM_A_CALLERS:
        who = master.as_(world.keys[caller])
        for method, path, body in attempts:
            resp = who.call(method, path, body)
            assert resp.status_code in (403, 404), (caller, method, path, resp.text)
    assert master.chat(key=world.keys["member:b"]).status_code == 200
    team_b = master.ok("GET", "/admin/v1/teams/team-b")
    assert team_b["name"] == "Team B" and team_b["budget"] is None
    assert master.ok("GET", "/admin/v1/users/user-b")["team_id"] == "team-b"


def test_team_admin_cannot_take_over_a_stronger_key_in_their_team(
    access_gateway: GatewayStarter, tmp_path: Any
) -> None:
    master = access_gateway(f"sqlite:///{tmp_path / 'escalate.db'}")
    world = seed(master)
    strong = master.ok("POST", "/admin/v1/keys", {"role": "admin", "team_id": "team-a"})
    team_admin = master.as_(world.keys["team_admin:a"])
    assert team_admin.ok("GET", f"/admin/v1/keys/{strong['id']}")["role"] == "admin"
    for method, path, body in [
        ("POST", f"/admin/v1/keys/{strong['id']}/rotate", {"grace": "1h"}),
        ("POST", f"/admin/v1/keys/{strong['id']}/revoke", None),
        ("PATCH", f"/admin/v1/keys/{strong['id']}", {"models": ["x"]}),
    ]:
        resp = team_admin.call(method, path, body)
        assert resp.status_code == 403, (path, resp.text)
        assert resp.json()["error"]["code"] == "role_not_assignable"
    assert master.ok("GET", "/admin/v1/whoami", key=strong["key"])["role"] == "admin"
