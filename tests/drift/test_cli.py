"""`opsgate drift compare` on two files (the real command, in a subprocess), and `opsgate
drift monitors|run|proposals` against a running gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.access.helpers import MASTER
from tests.drift.conftest import DriftGw, questions


def opsgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsgate", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def write(path: Path, texts: list[str], field: str = "text") -> Path:
    path.write_text("".join(json.dumps({field: t}) + "\n" for t in texts))
    return path


def test_compare_finds_a_topic_shift_and_names_the_grown_cluster(tmp_path: Path) -> None:
    quora, medical = questions("quora_question_pairs"), questions("medical_question_pairs")
    ref = write(tmp_path / "ref.jsonl", quora[:200])
    mixed = write(tmp_path / "cur.jsonl", quora[200:300] + medical[:100])
    same = write(tmp_path / "same.jsonl", quora[300:500])
    common = ["--field", "text", "--embedder", "hashing", "--json"]
    shifted = json.loads(opsgate("drift", "compare", str(ref), str(mixed), *common).stdout)
    assert shifted["drift"] and shifted["p_value"] <= 0.01
    assert (shifted["n_ref"], shifted["n_cur"]) == (200, 200)
    grown = [c for c in shifted["clusters"] if c["examples_from"] == "current" and c["delta"] > 0]
    assert any(e in medical[:100] for c in grown for e in c["examples"])
    unshifted = json.loads(opsgate("drift", "compare", str(ref), str(same), *common).stdout)
    assert not unshifted["drift"] and unshifted["p_value"] > 0.01


def test_compare_says_which_line_lacks_the_field(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref.jsonl", ["a", "b", "c"])
    cur = write(tmp_path / "cur.jsonl", ["a", "b"], field="prompt")
    done = opsgate(
        "drift", "compare", str(ref), str(cur), "--field", "text", "--embedder", "hashing"
    )
    assert done.returncode == 2
    assert f"{cur}:1: no field 'text'" in done.stderr
    missing = opsgate("drift", "compare", str(ref), str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.integration
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_monitors_run_and_proposals_through_the_gateway(
    database_url: str, drift_gateway: Any
) -> None:
    gw: DriftGw = drift_gateway(
        database_url, monitors=[{"name": "ops", "kind": "operational", "window": 60}]
    )
    env = {"OPSGATE_URL": gw.server.base, "OPSGATE_ADMIN_KEY": MASTER, "PATH": ""}
    ran = json.loads(opsgate("drift", "run", "--json", env=env).stdout)
    assert [(r["monitor"], r["state"]) for r in ran["data"]] == [("ops", "insufficient_data")]
    listed = opsgate("drift", "monitors", env=env)
    assert "ops" in listed.stdout and "insufficient_data" in listed.stdout
    assert json.loads(opsgate("drift", "proposals", "--json", env=env).stdout)["data"] == []
