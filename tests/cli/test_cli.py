"""The `opsgate` command, run as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.upstream import FakeUpstream, unused_port

pytestmark = pytest.mark.integration
OPSGATE = [sys.executable, "-m", "opsgate"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OPSGATE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_version() -> None:
    out = run("version")
    assert out.returncode == 0 and out.stdout.startswith("opsgate 0.")


def test_config_check_ok_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("models: [{name: m, deployments: [{provider: simulator, model: s}]}]\n")
    out = run("config", "check", "--config", str(good))
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout and "simulator:s" in out.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models:\n  - name: m\n    deployments:\n"
        "      - {provider: openai, model: x, timeout: fast, api_key: ${NOPE_UNSET}}\n"
        "router: {strategy: random}\n"
    )
    out = run("config", "check", "--config", str(bad), env={"NOPE_UNSET": ""})
    assert out.returncode == 2
    assert str(bad) in out.stderr
    assert "models[0].deployments[0].timeout: Input should be a valid number" in out.stderr
    assert "router.strategy" in out.stderr


def _wait_port(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gateway exited early"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("gateway did not start")


def test_serve_sighup_and_config_reload(tmp_path: Path, upstreams: dict[str, FakeUpstream]) -> None:
    fake = upstreams["alpha"]
    path = tmp_path / "opsgate.yaml"
    line = "  - {{name: {n}, deployments: [{{provider: openai, base_url: '{u}', model: up}}]}}\n"
    path.write_text("models:\n" + line.format(n="one", u=fake.url))
    port = unused_port()
    log = (tmp_path / "serve.log").open("w")
    env = {**os.environ, "OPSGATE_DATABASE_URL": f"sqlite:///{tmp_path}/opsgate.db"}
    proc = subprocess.Popen(
        [*OPSGATE, "serve", "--config", str(path), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_port(port, proc)
        base = f"http://127.0.0.1:{port}"

        def models() -> list[str]:
            return [m["id"] for m in httpx.get(f"{base}/v1/models").json()["data"]]

        assert models() == ["one"]
        path.write_text(
            "models:\n" + line.format(n="one", u=fake.url) + line.format(n="two", u=fake.url)
        )
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while models() != ["one", "two"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert models() == ["one", "two"]

        path.write_text("models:\n" + line.format(n="three", u=fake.url))
        out = run("config", "reload", "--config", str(path), "--url", base)
        assert out.returncode == 0, out.stderr
        assert models() == ["three"]

        path.write_text("models: [oops")
        out = run("config", "reload", "--config", str(path), "--url", base)
        assert out.returncode == 2 and "invalid YAML" in out.stderr
        assert models() == ["three"]
        resp = httpx.post(
            f"{base}/v1/chat/completions",
            json={"model": "three", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    # uvicorn re-raises SIGTERM after a graceful shutdown, so -15 is a clean exit too.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()


def test_serve_refuses_invalid_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models: [{name: m, deployments: [{provider: nope, model: x}]}]")
    out = run("serve", "--config", str(path), "--port", str(unused_port()))
    assert out.returncode == 2
    assert "models[0].deployments[0].provider: unknown provider 'nope'" in out.stderr
