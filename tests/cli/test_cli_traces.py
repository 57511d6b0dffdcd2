"""`opsgate traces`, `opsgate usage` and `opsgate db`, run as real processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from opsgate.store.migrate import current, head
from tests.api.test_admin_traces import config, send_traffic, wait_for
from tests.cli.test_cli import run
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream, unused_port

pytestmark = pytest.mark.integration


@pytest.fixture
def served(gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]) -> GatewayServer:
    """A gateway with seven traces stored: six answers and one upstream failure."""
    gw = gateway(config(upstreams["alpha"]))
    send_traffic(gw, upstreams["alpha"])
    with httpx.Client(base_url=gw.base) as http:
        wait_for(http, 7)
    return gw


def test_traces_list_and_pages(served: GatewayServer) -> None:
    url = ("--url", served.base)
    listed = run("traces", "list", *url, "--json")
    assert listed.returncode == 0, listed.stderr
    traces = json.loads(listed.stdout)["data"]
    assert len(traces) == 7

    table = run("traces", "list", *url, "--since", "1h")
    assert table.returncode == 0, table.stderr
    assert "started (UTC)" in table.stdout and "latency ms" in table.stdout
    assert all(t["id"] in table.stdout for t in traces)
    assert table.stdout.count("error 5") == 1 and "0.050000" in table.stdout

    errors = run("traces", "list", *url, "--status", "error")
    assert errors.returncode == 0, errors.stderr
    assert [t["id"] in errors.stdout for t in traces] == [t["status"] == "error" for t in traces]
    labelled = run("traces", "list", *url, "-m", "i:4", "-m", "run:r1")
    [wanted] = [t["id"] for t in traces if t["metadata"].get("i") == "4"]
    assert wanted in labelled.stdout
    assert sum(t["id"] in labelled.stdout for t in traces) == 1

    first = run("traces", "list", *url, "--limit", "4")
    assert "more: --cursor " in first.stdout
    cursor = first.stdout.split("more: --cursor ")[1].split()[0]
    rest = run("traces", "list", *url, "--limit", "4", "--cursor", cursor)
    assert rest.returncode == 0, rest.stderr
    assert "more:" not in rest.stdout
    assert [t["id"] in rest.stdout for t in traces] == [False] * 4 + [True] * 3

    none = run("traces", "list", *url, "--model", "nope")
    assert none.returncode == 0 and "no traces match" in none.stdout
    bad = run("traces", "list", *url, "--since", "yesterday")
    assert bad.returncode == 1 and "(400)" in bad.stderr and "since must be" in bad.stderr


def test_traces_show(served: GatewayServer) -> None:
    url = ("--url", served.base)
    trace_id = json.loads(run("traces", "list", *url, "--status", "ok", "--json").stdout)["data"][
        0
    ]["id"]
    shown = run("traces", "show", trace_id, *url)
    assert shown.returncode == 0, shown.stderr
    assert f"trace {trace_id}" in shown.stdout
    assert "model requested" in shown.stdout and "$0.050000" in shown.stdout
    assert "spans" in shown.stdout and "attempt" in shown.stdout
    assert "hello from alpha" not in shown.stdout

    with_bodies = run("traces", "show", trace_id, *url, "--bodies")
    assert "request body" in with_bodies.stdout and "say hello" in with_bodies.stdout
    assert "hello from alpha" in with_bodies.stdout

    missing = run("traces", "show", "no-such-trace", *url)
    assert missing.returncode == 1
    assert "(404)" in missing.stderr and "no-such-trace" in missing.stderr


def test_usage(served: GatewayServer) -> None:
    url = ("--url", served.base)
    by_model = run("usage", "--by", "model", "--since", "7d", *url)
    assert by_model.returncode == 0, by_model.stderr
    assert "requests" in by_model.stdout and "p95 ms" in by_model.stdout
    [row] = [line for line in by_model.stdout.splitlines() if " m " in line]
    cells = row.replace("│", " ").split()
    assert cells[:7] == ["m", "7", "1", "60", "120", "0.300000", cells[6]]

    daily = run("usage", "--by", "model", "--by", "status", "--bucket", "day", *url)
    assert daily.returncode == 0, daily.stderr
    assert "day (UTC)" in daily.stdout and "error" in daily.stdout

    as_json = json.loads(run("usage", "--by", "deployment,status", *url, "--json").stdout)
    assert sum(r["requests"] for r in as_json["data"]) == 7

    bad = run("usage", "--by", "planet", *url)
    assert bad.returncode == 1 and "unknown group_by dimension 'planet'" in bad.stderr


def test_master_key_and_unreachable_gateway(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = gateway(config(upstreams["alpha"]), {"OPSGATE_MASTER_KEY": "sk-master"})
    refused = run("traces", "list", "--url", gw.base, env={"OPSGATE_MASTER_KEY": ""})
    assert refused.returncode == 1 and "(401)" in refused.stderr
    allowed = run("usage", "--url", gw.base, env={"OPSGATE_MASTER_KEY": "sk-master"})
    assert allowed.returncode == 0, allowed.stderr

    dead = run("traces", "list", "--url", f"http://127.0.0.1:{unused_port()}")
    assert dead.returncode == 1 and "cannot reach the gateway" in dead.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path}/flag.db"
    out = run("db", "upgrade", "--database-url", target)
    assert out.returncode == 0, out.stderr
    assert f"database at revision {head()}" in out.stdout
    assert asyncio.run(current(target)) == head()

    from_env = f"sqlite:///{tmp_path}/env.db"
    again = run("db", "upgrade", env={"OPSGATE_DATABASE_URL": from_env, "OPSGATE_CONFIG": ""})
    assert again.returncode == 0, again.stderr
    assert asyncio.run(current(from_env)) == head()

    config_file = tmp_path / "opsgate.yaml"
    from_config = f"sqlite:///{tmp_path}/config.db"
    config_file.write_text(f"settings: {{database_url: '{from_config}'}}\n")
    via_config = run(
        "db", "upgrade", "--config", str(config_file), env={"OPSGATE_DATABASE_URL": ""}
    )
    assert via_config.returncode == 0, via_config.stderr
    assert asyncio.run(current(from_config)) == head()

    bad = run("db", "upgrade", "--database-url", "mysql://nobody@127.0.0.1/x")
    assert bad.returncode == 1 and "migration failed" in bad.stderr
