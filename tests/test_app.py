"""The app factory's process-level settings: a server worker keeps the garbage collector off its
start-up heap (`settle_heap`); an app built by a test (or any embedding program) leaves the
collector alone. Each case runs in a fresh interpreter, so this test process is not touched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import asyncio, gc, json, sys
from starlette.testclient import TestClient
from opsgate.app import create_app
from opsgate.config.schema import Config

before = gc.get_threshold()
app = create_app(Config.model_validate({"models": []}), own_process=sys.argv[1] == "own")
with TestClient(app) as client:
    health = client.get("/healthz").status_code
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "health": health}))
"""


def _probe(mode: str, tmp_path: Path) -> dict[str, object]:
    env = {"OPSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'opsgate.db'}", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_server_worker_freezes_its_start_up_heap_and_collects_less_often(
    tmp_path: Path,
) -> None:
    got = _probe("own", tmp_path)
    assert got["health"] == 200
    assert isinstance(got["frozen"], int) and got["frozen"] > 10_000  # modules, config, ...
    assert got["after"] == [50_000, 10, 10]
    assert got["before"] != got["after"]


def test_an_app_built_in_someone_elses_process_leaves_the_collector_alone(
    tmp_path: Path,
) -> None:
    got = _probe("embedded", tmp_path)
    assert got["health"] == 200
    assert got["frozen"] == 0
    assert got["after"] == got["before"]
