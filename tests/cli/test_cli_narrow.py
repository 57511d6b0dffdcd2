"""The CLI at 80 columns (COLUMNS=80, what rich reads): ids stay whole on one line, no line is
wider than the terminal, the less important columns are hidden and named; `--json` and a wide
terminal still show everything."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.api.test_admin_traces import config, send_traffic, wait_for
from tests.cli.test_cli import run
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration


@pytest.fixture
def served(gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]) -> GatewayServer:
    """Seven traces (six answers, one failure), a team with a budget and a key with limits."""
    gw = gateway(config(upstreams["alpha"]))
    send_traffic(gw, upstreams["alpha"])
    with httpx.Client(base_url=gw.base) as http:
        wait_for(http, 7)
    return gw


def at(width: int, gw: GatewayServer, *args: str) -> subprocess.CompletedProcess[str]:
    out = run(*args, "--url", gw.base, env={"COLUMNS": str(width)})
    assert out.returncode == 0, out.stderr
    return out


def lines_with(text: str, value: str) -> list[str]:
    return [line for line in text.splitlines() if value in line]


def assert_fits(text: str, width: int) -> None:
    wide = [line for line in text.splitlines() if len(line) > width]
    assert wide == [], f"lines wider than {width}: {wide}"


def test_keys_at_80_columns(served: GatewayServer) -> None:
    made = at(
        80, served, "teams", "create", "A team with a rather long name", "--id", "platform-team",
        "--budget", "250", "--rpm", "600",
    )  # fmt: skip
    assert_fits(made.stdout, 80)
    created = at(
        80, served, "keys", "create", "--alias", "a-notebook-with-a-long-alias", "--team",
        "platform-team", "--models", "gpt-4o*,claude-*", "--expires", "30d", "--rpm", "60",
        "--tpm", "20000", "--budget", "10",
    )  # fmt: skip
    key = json.loads(at(200, served, "keys", "list", "--json").stdout)["data"][0]
    assert_fits(created.stdout, 80)
    [row] = lines_with(created.stdout, key["id"])  # whole, on one line, not `key_3…`
    assert "active" in row and "platform-team" in row
    assert "hidden at 80 columns:" in created.stdout
    assert created.stdout.strip().splitlines()[-1].startswith("og-"), "the secret, last"

    listed = at(80, served, "keys", "list")
    assert_fits(listed.stdout, 80)
    assert len(lines_with(listed.stdout, key["id"])) == 1
    wide = at(200, served, "keys", "list")
    assert "hidden" not in wide.stdout
    [row] = lines_with(wide.stdout, key["id"])
    assert "60 rpm, 20000 tpm" in row and "$10 monthly" in row and "gpt-4o*" in row

    teams = at(80, served, "teams", "list")
    assert_fits(teams.stdout, 80)
    assert len(lines_with(teams.stdout, "platform-team")) == 1


def test_traces_and_usage_at_80_columns(served: GatewayServer) -> None:
    traces = json.loads(at(80, served, "traces", "list", "--json").stdout)["data"]
    assert len(traces) == 7
    narrow = at(80, served, "traces", "list")
    assert_fits(narrow.stdout, 80)
    for t in traces:  # each id whole on one line (it wrapped over seven before)
        assert len(lines_with(narrow.stdout, t["id"])) == 1, t["id"]
    assert narrow.stdout.count("error 502") == 1
    assert "hidden at 80 columns:" in narrow.stdout and "cache" in narrow.stdout

    wide = at(250, served, "traces", "list")
    assert "hidden" not in wide.stdout
    assert all(len(lines_with(wide.stdout, t["id"])) == 1 for t in traces)
    assert "0.050000" in wide.stdout and "ttft ms" in wide.stdout

    shown = at(80, served, "traces", "show", traces[0]["id"])
    assert_fits(shown.stdout, 80)
    assert len(lines_with(shown.stdout, traces[0]["id"])) == 1

    usage = at(80, served, "usage", "--by", "model,deployment", "--bucket", "hour")
    assert_fits(usage.stdout, 80)
    assert "requests" in usage.stdout and "hidden at 80 columns:" in usage.stdout
