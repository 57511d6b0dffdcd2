"""`opsgate keys/teams create/update` with rate limits and budgets, and `opsgate wait`, run as
real processes against a real gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_cli import OPSGATE, run
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import unused_port

pytestmark = pytest.mark.integration
MASTER = "mk-cli-access-test"
SIMULATED = {
    "models": [
        {
            "name": "chat",
            "deployments": [
                {"provider": "simulator", "model": "s", "options": {"ttft_ms": 1, "token_ms": 0.1}}
            ],
        }
    ],
    "router": {"retries": 0},
}


@pytest.fixture
def gw(gateway: GatewayFactory) -> GatewayServer:
    return gateway(SIMULATED, {"OPSGATE_MASTER_KEY": MASTER})


def cli(gw: GatewayServer, *args: str) -> subprocess.CompletedProcess[str]:
    return run(*args, "--url", gw.base, env={"OPSGATE_MASTER_KEY": MASTER, "OPSGATE_ADMIN_KEY": ""})


def admin(gw: GatewayServer, path: str) -> Any:
    resp = httpx.get(gw.base + path, headers={"authorization": f"Bearer {MASTER}"}, timeout=20)
    assert resp.status_code == 200, resp.text
    return resp.json()


def chat(gw: GatewayServer, key: str) -> httpx.Response:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{gw.url}/chat/completions", json=body, headers=headers, timeout=20)


def test_key_limits_and_budget_from_flags(gw: GatewayServer) -> None:
    made = cli(
        gw, "keys", "create", "--alias", "nb", "--rpm", "2", "--tpm", "100000",
        "--max-parallel", "4", "--budget", "10", "--period", "weekly", "--alert-at", "0.9",
        "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["limits"] == {"rpm": 2, "tpm": 100000, "max_parallel": 4}
    assert key["budget"]["period"] == "weekly" and key["budget"]["alert_at"] == [0.9]
    assert float(key["budget"]["max_usd"]) == 10
    assert [chat(gw, key["key"]).status_code for _ in range(2)] == [200, 200]
    refused = chat(gw, key["key"])
    assert refused.status_code == 429 and refused.json()["error"]["param"] == "key.rpm"

    # An update changes only what is given: rpm removed (0), tpm and parallel kept.
    out = cli(gw, "keys", "update", key["id"], "--rpm", "0", "--budget", "20")
    assert out.returncode == 0, out.stderr
    assert key["id"] in out.stdout and "$20 weekly" in out.stdout
    now = admin(gw, f"/admin/v1/keys/{key['id']}")
    assert now["limits"] == {"rpm": None, "tpm": 100000, "max_parallel": 4}
    assert float(now["budget"]["max_usd"]) == 20 and now["budget"]["alert_at"] == [0.9]
    assert chat(gw, key["key"]).status_code == 200, "the rpm limit is gone"

    assert cli(gw, "keys", "update", key["id"], "--period", "daily").returncode == 0
    budget = admin(gw, f"/admin/v1/keys/{key['id']}")["budget"]
    assert (float(budget["max_usd"]), budget["period"]) == (20, "daily")

    out = cli(gw, "keys", "update", key["id"], "--no-limits", "--no-budget", "--alias", "nb2")
    assert out.returncode == 0, out.stderr
    now = admin(gw, f"/admin/v1/keys/{key['id']}")
    assert now["budget"] is None and now["alias"] == "nb2"
    assert now["limits"] == {"rpm": None, "tpm": None, "max_parallel": None}

    out = cli(gw, "keys", "update", key["id"], "--disable")
    assert out.returncode == 0 and "disabled" in out.stdout
    assert chat(gw, key["key"]).status_code == 401


def test_team_limits_and_budget_from_flags(gw: GatewayServer) -> None:
    out = cli(gw, "teams", "create", "Research", "--id", "research", "--rpm", "600",
              "--budget", "100", "--period", "monthly")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "research" in out.stdout and "$100 monthly" in out.stdout and "600 rpm" in out.stdout
    team = admin(gw, "/admin/v1/teams/research")
    assert team["limits"]["rpm"] == 600 and float(team["budget"]["max_usd"]) == 100

    out = cli(gw, "teams", "update", "research", "--tpm", "5000", "--alert-at", "0.5")
    assert out.returncode == 0, out.stderr
    team = admin(gw, "/admin/v1/teams/research")
    assert team["limits"] == {"rpm": 600, "tpm": 5000, "max_parallel": None}
    assert team["budget"]["period"] == "monthly" and team["budget"]["alert_at"] == [0.5]

    out = cli(gw, "teams", "update", "research", "--name", "Research lab", "--no-budget")
    assert out.returncode == 0, out.stderr
    team = admin(gw, "/admin/v1/teams/research")
    assert team["name"] == "Research lab" and team["budget"] is None
    assert team["limits"]["rpm"] == 600
    listed = cli(gw, "teams", "list")
    assert "Research lab" in listed.stdout and "600 rpm, 5000 tpm" in listed.stdout

    # A key of the team is held to the team's limit as well as its own.
    assert cli(gw, "teams", "update", "research", "--rpm", "1").returncode == 0
    made = cli(gw, "keys", "create", "--team", "research", "--rpm", "50", "--json")
    secret = json.loads(made.stdout)["key"]
    assert chat(gw, secret).status_code == 200
    refused = chat(gw, secret)
    assert refused.status_code == 429 and refused.json()["error"]["param"] == "team.rpm"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "create", "--budget", "ten"), "not an amount in USD"),
        (("keys", "create", "--budget", "0"), "more than $0"),
        (("keys", "create", "--period", "daily"), "need --budget"),
        (("keys", "create", "--rpm", "-1"), "Invalid value for '--rpm'"),
        (("keys", "create", "--period", "hourly"), "hourly"),
        (("keys", "update", "key_x"), "nothing to change"),
        (("keys", "update", "key_x", "--no-budget", "--budget", "5"), "cannot be combined"),
        (("teams", "update", "t", "--no-limits", "--rpm", "5"), "cannot be combined"),
    ],
)
def test_bad_flags_are_refused_before_any_call(args: tuple[str, ...], message: str) -> None:
    out = run(*args, "--url", f"http://127.0.0.1:{unused_port()}")  # nothing listens there
    assert out.returncode == 2, out
    assert message in out.stderr
    assert "cannot reach" not in out.stderr


def test_update_of_a_budget_that_is_not_there(gw: GatewayServer) -> None:
    key = json.loads(cli(gw, "keys", "create", "--json").stdout)
    out = cli(gw, "keys", "update", key["id"], "--period", "daily")
    assert out.returncode == 2 and "need --budget (there is none yet)" in out.stderr
    missing = cli(gw, "keys", "update", "key_0000000000000000", "--rpm", "5")
    assert missing.returncode == 1 and "(404)" in missing.stderr


def test_wait_until_ready(tmp_path: Path, gw: GatewayServer) -> None:
    ready = run("wait", "--url", gw.base)
    assert ready.returncode == 0, ready.stderr
    assert "ready" in ready.stdout and "1 model, 1 deployment available" in ready.stdout

    dead = run("wait", "--url", f"http://127.0.0.1:{unused_port()}", "--timeout", "0.5")
    assert dead.returncode == 1 and "not ready after 0.5 s" in dead.stderr
    assert "refused" in dead.stderr.lower()

    # Started before the gateway, `wait` returns once the gateway is up.
    port = unused_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OPSGATE_DATABASE_URL": f"sqlite:///{tmp_path}/w.db", "OPSGATE_URL": base}
    env.pop("OPSGATE_MASTER_KEY", None)
    waiting = subprocess.Popen(
        [*OPSGATE, "wait", "--timeout", "60"], env=env, stdout=subprocess.PIPE, text=True
    )
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [*OPSGATE, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        stdout, _ = waiting.communicate(timeout=90)
        assert waiting.returncode == 0, (tmp_path / "serve.log").read_text()
        assert f"ready: {base}" in stdout
        assert httpx.get(f"{base}/readyz").status_code == 200
    finally:
        waiting.kill()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
