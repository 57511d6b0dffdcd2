"""Keys on the request path, on a real gateway: 401 reasons, allowed models, rotation, the open
laptop default, and roles that may not call models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from opsgate.access.keys import generate_key
from tests.access.conftest import GatewayStarter
from tests.access.helpers import Client

pytestmark = pytest.mark.integration


def _error(resp: httpx.Response, status: int, code: str, words: str) -> None:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code, error
    assert words.lower() in error["message"].lower(), error
    assert set(error) == {"message", "type", "code", "param"}


@pytest.fixture
def gw(access_gateway: GatewayStarter, tmp_path: Path) -> Client:
    return access_gateway(f"sqlite:///{tmp_path / 'auth.db'}")


def _key(gw: Client, **body: Any) -> dict[str, Any]:
    made: dict[str, Any] = gw.ok("POST", "/admin/v1/keys", body)
    return made


def test_every_401_says_why(gw: Client) -> None:
    live = _key(gw)
    expired = _key(gw)
    revoked = _key(gw)
    disabled = _key(gw)
    gw.ok("PATCH", f"/admin/v1/keys/{expired['id']}", {"expires_at": "2001-01-01T00:00:00Z"})
    gw.ok("POST", f"/admin/v1/keys/{revoked['id']}/revoke")
    gw.ok("PATCH", f"/admin/v1/keys/{disabled['id']}", {"enabled": False})
    cases = [
        (None, "missing_api_key", "didn't provide an api key"),
        ("sk-not-ours", "invalid_api_key", "malformed"),
        ("og-short", "invalid_api_key", "malformed"),
        (generate_key(), "invalid_api_key", "no such key"),
        (expired["key"], "expired_api_key", "expired at 2001-01-01"),
        (revoked["key"], "revoked_api_key", "revoked"),
        (disabled["key"], "disabled_api_key", "disabled"),
    ]
    for secret, code, words in cases:
        _error(gw.chat(key=secret), 401, code, words)
        _error(gw.call("GET", "/v1/models", key=secret), 401, code, words)
        _error(gw.call("GET", "/admin/v1/whoami", key=secret), 401, code, words)
    assert gw.chat(key=live["key"]).status_code == 200
    assert gw.ok("GET", "/admin/v1/whoami", key=live["key"])["key_id"] == live["id"]


def test_allowed_models_are_globs_checked_before_routing(gw: Client) -> None:
    key = _key(gw, models=["gpt-4o*"])["key"]
    assert gw.chat("gpt-4o-mini", key=key).status_code == 200
    assert gw.chat("gpt-4o", key=key).status_code == 200
    _error(gw.chat("claude-3-haiku", key=key), 403, "model_not_allowed", "claude-3-haiku")
    _error(gw.chat("no-such-model", key=key), 403, "model_not_allowed", "gpt-4o*")
    listed = [m["id"] for m in gw.ok("GET", "/v1/models", key=key)["data"]]
    assert listed == ["gpt-4o-mini", "gpt-4o"]
    everything = [m["id"] for m in gw.ok("GET", "/v1/models")["data"]]
    assert "claude-3-haiku" in everything


def test_roles_without_models_call_get_403(gw: Client) -> None:
    gw.ok("POST", "/admin/v1/teams", {"id": "t", "name": "T"})
    viewer = _key(gw, role="viewer", team_id="t")["key"]
    _error(gw.chat(key=viewer), 403, "permission_denied", "models:call")
    for role in ("admin", "member", "service"):
        assert gw.chat(key=_key(gw, role=role)["key"]).status_code == 200, role


def test_rotation_keeps_the_old_key_for_the_grace_period(gw: Client) -> None:
    old = _key(gw, alias="svc", models=["gpt-4o-mini"], metadata={"app": "x"})
    new = gw.ok("POST", f"/admin/v1/keys/{old['id']}/rotate", {"grace": "1h"})
    assert new["key"] != old["key"] and new["rotated_from"] == old["id"]
    assert (new["alias"], new["models"], new["metadata"]) == ("svc", ["gpt-4o-mini"], {"app": "x"})
    assert new["replaces"]["expires_at"] is not None
    assert gw.chat(key=old["key"]).status_code == 200
    assert gw.chat(key=new["key"]).status_code == 200
    newer = gw.ok("POST", f"/admin/v1/keys/{new['id']}/rotate", {"grace": 0})
    _error(gw.chat(key=new["key"]), 401, "expired_api_key", "expired")
    assert gw.chat(key=newer["key"]).status_code == 200
    again = gw.call("POST", f"/admin/v1/keys/{new['id']}/rotate", {})
    assert again.status_code == 409


def test_secrets_are_shown_once_and_never_listed(gw: Client) -> None:
    made = _key(gw, alias="once")
    assert made["key"].startswith("og-") and made["prefix"] == made["key"][:11]
    listed = (
        gw.call("GET", "/admin/v1/keys").text + gw.call("GET", f"/admin/v1/keys/{made['id']}").text
    )
    assert made["key"] not in listed and made["prefix"] in listed


def test_bodies_are_validated(gw: Client) -> None:
    for body in ({"role": "overlord"}, {"nope": 1}, {"expires_in": "soon"}, {"models": "gpt-*"}):
        resp = gw.call("POST", "/admin/v1/keys", body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.json()["error"]["type"] == "invalid_request_error"
    bad_json = httpx.post(
        gw.base + "/admin/v1/keys",
        content=b"{not json",
        headers={"authorization": f"Bearer {gw.key}"},
    )
    assert bad_json.status_code == 400
    assert gw.call("GET", "/admin/v1/keys?colour=blue").status_code == 400
    assert gw.call("GET", "/admin/v1/keys/key_missing").status_code == 404
    assert gw.call("POST", "/admin/v1/teams", {"id": "dup", "name": "D"}).status_code == 201
    assert gw.call("POST", "/admin/v1/teams", {"id": "dup", "name": "D"}).status_code == 409


def test_open_until_a_key_exists_when_no_master_key(
    access_gateway: GatewayStarter, tmp_path: Path
) -> None:
    gw = access_gateway(f"sqlite:///{tmp_path / 'open.db'}", master=None)
    assert gw.chat(key=None).status_code == 200, "laptop default: open"
    assert gw.chat(key="sk-anything").status_code == 200
    made = gw.ok("POST", "/admin/v1/keys", {"alias": "first"})  # this machine is trusted
    _error(gw.chat(key=None), 401, "missing_api_key", "api key")
    assert gw.chat(key=made["key"]).status_code == 200
    assert gw.ok("GET", "/admin/v1/whoami")["key_id"] == "anonymous", "loopback admin stays"
    member = gw.ok("GET", "/admin/v1/whoami", key=made["key"])
    assert member["role"] == "member"
    assert gw.call("GET", "/admin/v1/keys", key=made["key"]).status_code == 403
