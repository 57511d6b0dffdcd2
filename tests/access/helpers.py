"""Shared pieces of the access tests: an HTTP client for one gateway, and a seeded world of two
teams with a key of every role in each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fixtures.upstream import FakeUpstream

MASTER = "mk-test-master-key"
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-haiku")
MSG = [{"role": "user", "content": "say hello"}]
ROLES = ("admin", "team_admin", "member", "viewer", "service")


def config_data(fake: FakeUpstream, **traces: Any) -> dict[str, Any]:
    deployment = {"provider": "openai", "base_url": fake.url, "model": "up", "api_key": "sk-up"}
    return {
        "models": [{"name": name, "deployments": [dict(deployment)]} for name in MODELS],
        "router": {"retries": 0},
        "traces": {"flush_interval": 0.05, **traces},
    }


@dataclass
class Client:
    """Calls one gateway as one caller (`key`)."""

    base: str
    key: str | None = MASTER
    server: Any = None
    """The in-process `GatewayServer`, when there is one."""

    def call(
        self, method: str, path: str, body: Any = None, *, key: str | None = "", **kw: Any
    ) -> httpx.Response:
        use = self.key if key == "" else key
        headers = {"authorization": f"Bearer {use}"} if use else {}
        return httpx.request(method, self.base + path, json=body, headers=headers, timeout=30, **kw)

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        resp = self.call(method, path, body, **kw)
        assert resp.status_code in (200, 201), f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def chat(self, model: str = "gpt-4o-mini", *, key: str | None = "") -> httpx.Response:
        return self.call("POST", "/v1/chat/completions", {"model": model, "messages": MSG}, key=key)

    def as_(self, key: str | None) -> Client:
        return Client(self.base, key, self.server)


@dataclass
class World:
    """Two teams (A and B), a user in each, and a key of every role per team."""

    keys: dict[str, str] = field(default_factory=dict)
    """`"<role>:<team>"` → secret (team `a`, `b`; the admin key is `admin:-`)."""
    key_ids: dict[str, str] = field(default_factory=dict)


def seed(admin: Client) -> World:
    world = World()
    for team in ("a", "b"):
        admin.ok("POST", "/admin/v1/teams", {"id": f"team-{team}", "name": f"Team {team.upper()}"})
        admin.ok("POST", "/admin/v1/users", {"id": f"user-{team}", "team_id": f"team-{team}"})
    made = admin.ok("POST", "/admin/v1/keys", {"alias": "root", "role": "admin"})
    world.keys["admin:-"], world.key_ids["admin:-"] = made["key"], made["id"]
    for team in ("a", "b"):
        for role in ROLES[1:]:
            body: dict[str, Any] = {"alias": f"{role}-{team}", "role": role}
            body["team_id"] = f"team-{team}"
            if role == "member":
                body["user_id"] = f"user-{team}"
            made = admin.ok("POST", "/admin/v1/keys", body)
            world.keys[f"{role}:{team}"], world.key_ids[f"{role}:{team}"] = made["key"], made["id"]
    return world
