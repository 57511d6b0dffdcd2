"""Who may do what with prompts, on a real gateway with a master key and keys of every role in
two teams (SQLite and PostgreSQL): another team's prompt does not exist (404), moving
`production` needs `prompts:promote` (403, before anything is looked up), and keys serve the
prompts of their own team."""

from __future__ import annotations

import pytest

from tests.access.conftest import GatewayStarter
from tests.access.helpers import Client, seed
from tests.prompts.helpers import system_text

pytestmark = pytest.mark.integration
BASE = "/admin/v1/prompts"


def test_team_scope_and_permissions(access_gateway: GatewayStarter, database_url: str) -> None:
    admin = access_gateway(database_url)
    world = seed(admin)

    def as_(role: str, team: str = "a") -> Client:
        return admin.as_(world.keys[f"{role}:{team}"])

    lead_a, member_a, viewer_a, service_a = (
        as_(r) for r in ("team_admin", "member", "viewer", "service")
    )
    lead_b, service_b = as_("team_admin", "b"), as_("service", "b")

    made = lead_a.call("POST", BASE, {"name": "triage", **system_text(1), "labels": ["production"]})
    assert made.status_code == 201, made.text
    assert made.json()["team_id"] == "team-a"
    assert member_a.call("POST", BASE, {"name": "triage", **system_text(2)}).status_code == 201

    # Another team's prompt does not exist for team B: reading, serving, moving, pushing into it.
    assert lead_b.call("GET", f"{BASE}/triage").status_code == 404
    assert lead_b.call("GET", BASE).json()["data"] == []
    moved = lead_b.call("POST", f"{BASE}/triage/labels/staging", {"version": 1})
    assert moved.status_code == 404
    into = lead_b.call("POST", BASE, {"name": "triage", "team_id": "team-a", **system_text(3)})
    assert (into.status_code, into.json()["error"]["code"]) == (404, "prompt_not_found")
    body = {"model": "prompt:triage", "variables": {"ticket": "x"}}
    assert service_b.call("POST", "/v1/chat/completions", body).status_code == 404
    assert service_b.call("GET", "/v1/prompts/triage").status_code == 404
    assert service_a.call("POST", "/v1/chat/completions", body).status_code == 200
    assert service_a.call("GET", "/v1/prompts/triage").json()["version"] == 1

    # production needs prompts:promote: a member gets 403 (before any look-up), staging is fine.
    refused = member_a.call("POST", f"{BASE}/triage/labels/production", {"version": 2})
    assert (refused.status_code, refused.json()["error"]["param"]) == (403, "label")
    assert (
        member_a.call("POST", f"{BASE}/nope/labels/production", {"version": 2}).status_code == 403
    )
    refused = member_a.call("POST", f"{BASE}/triage/labels/production/rollback")
    assert refused.status_code == 403
    assert member_a.call("POST", f"{BASE}/triage/labels/staging", {"version": 2}).status_code == 200
    promoted = lead_a.call("POST", f"{BASE}/triage/labels/production", {"version": 2})
    assert promoted.status_code == 200 and promoted.json()["actor"].startswith("key:")
    assert service_a.call("GET", "/v1/prompts/triage").json()["version"] == 2

    # Viewers read; they may not push; service keys may not use the admin API at all.
    assert viewer_a.call("GET", f"{BASE}/triage/versions").status_code == 200
    assert viewer_a.call("POST", BASE, {"name": "x", **system_text(1)}).status_code == 403
    assert service_a.call("GET", BASE).status_code == 403
    assert viewer_a.call("GET", "/v1/prompts/triage").status_code == 200

    # Admins see every team and may name one.
    assert [p["team_id"] for p in admin.ok("GET", BASE)["data"]] == ["team-a"]
    assert admin.ok("GET", f"{BASE}/triage", params={"team_id": "team-a"})["version"] == 2
    assert admin.call("GET", f"{BASE}/triage").status_code == 404  # the master key has no team

    audit = admin.ok("GET", "/admin/v1/audit", params={"action": "prompts.label_move"})["data"]
    assert [
        (e["actor"] == f"key:{world.key_ids['team_admin:a']}", e["detail"]["label"])
        for e in audit[:2]
    ] == [(True, "production"), (False, "staging")]
