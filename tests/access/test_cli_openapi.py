"""`opsgate keys/teams/users` as real processes against a real gateway, and the OpenAPI document
the admin API serves about itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.access.conftest import GatewayStarter
from tests.access.helpers import MASTER, Client

pytestmark = pytest.mark.integration


def opsgate(gw: Client, *args: str, key: str = MASTER) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "OPSGATE_URL": gw.base, "OPSGATE_MASTER_KEY": key}
    env.pop("OPSGATE_ADMIN_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "opsgate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture
def gw(access_gateway: GatewayStarter, tmp_path: Path) -> Client:
    return access_gateway(f"sqlite:///{tmp_path / 'cli.db'}")


def test_cli_manages_teams_users_and_keys(gw: Client) -> None:
    out = opsgate(gw, "teams", "create", "ML platform", "--id", "ml")
    assert out.returncode == 0, out.stderr
    assert opsgate(gw, "users", "create", "--id", "ada", "--team", "ml").returncode == 0
    listed = opsgate(gw, "teams", "list")
    assert "ml" in listed.stdout and "ML platform" in listed.stdout
    assert "ada" in opsgate(gw, "users", "list", "--team", "ml").stdout

    out = opsgate(
        gw, "keys", "create", "--alias", "ada-laptop", "--team", "ml", "--user", "ada",
        "--models", "gpt-4o*", "--expires", "30d",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip().splitlines()[-1]
    assert secret.startswith("og-")
    assert gw.chat("gpt-4o-mini", key=secret).status_code == 200
    assert gw.chat("claude-3-haiku", key=secret).status_code == 403
    [key] = gw.ok("GET", "/admin/v1/keys", params={"team_id": "ml"})["data"]
    assert key["alias"] == "ada-laptop" and key["expires_at"] is not None

    listed = opsgate(gw, "keys", "list", "--team", "ml")
    assert key["id"] in listed.stdout and secret not in listed.stdout

    out = opsgate(gw, "keys", "rotate", key["id"], "--grace", "0")
    assert out.returncode == 0, out.stderr
    rotated = out.stdout.strip().splitlines()[-1]
    assert gw.chat(key=secret).status_code == 401
    assert gw.chat(key=rotated).status_code == 200

    new_id = gw.ok("GET", "/admin/v1/keys", params={"team_id": "ml"})["data"][-1]["id"]
    out = opsgate(gw, "keys", "revoke", new_id)
    assert out.returncode == 0 and "revoked" in out.stdout
    assert gw.chat(key=rotated).status_code == 401


def test_cli_reports_refusals(gw: Client) -> None:
    out = opsgate(gw, "keys", "list", key="og-" + "x" * 43)
    assert out.returncode == 1 and "401" in out.stderr and "no such key" in out.stderr
    member = gw.ok("POST", "/admin/v1/keys", {"role": "member"})["key"]
    out = opsgate(gw, "teams", "create", "nope", key=member)
    assert out.returncode == 1 and "403" in out.stderr


def test_openapi_lists_every_admin_route_with_its_body_schema(gw: Client) -> None:
    doc = gw.ok("GET", "/admin/v1/openapi.json")
    assert doc["openapi"].startswith("3.1")
    served = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            served.add((method.upper(), path))
            assert op["responses"], (method, path)
            body = op.get("requestBody")
            if body:
                ref = body["content"]["application/json"]["schema"]["$ref"]
                name = ref.rsplit("/", 1)[1]
                schema = doc["components"]["schemas"][name]
                assert schema.get("additionalProperties") is False, name
    in_app = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in gw.server.app.routes
        if getattr(route, "path", "").startswith("/admin/")
        for method in (route.methods or ()) - {"HEAD"}
    }
    assert len(in_app) >= 25
    assert in_app == served, f"missing: {in_app - served}; extra: {served - in_app}"
    create = doc["paths"]["/admin/v1/keys"]["post"]
    assert create["x-opsgate-permissions"] == ["keys:create"]
    props = doc["components"]["schemas"]["KeyCreate"]["properties"]
    assert {"alias", "role", "team_id", "user_id", "models", "expires_in", "budget"} <= set(props)
