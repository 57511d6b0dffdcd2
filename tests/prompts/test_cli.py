"""`opsgate prompts ...` as real processes against a real gateway: push a folder (idempotent),
list, show, diff, pull (the pulled file pushes as unchanged), promote and roll back, and a file
with a syntax error named with its line and column while the others still push."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.test_cli import run
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream
from tests.prompts.helpers import system_text, triage
from tests.prompts.test_api import start

pytestmark = pytest.mark.integration


def write(folder: Path, name: str, data: dict[str, object]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def pushed(out: str) -> dict[str, tuple[int, bool]]:
    return {r["name"]: (r["version"], r["created"]) for r in json.loads(out)}


def test_gitops_round_trip(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    gw = start(gateway, upstreams["alpha"])
    url = ("--url", gw.base)
    folder = tmp_path / "prompts"
    folder.mkdir()
    write(folder, "triage", system_text(1))
    write(folder, "summary", {**triage(), "name": "summarise"})
    (folder / "README.md").write_text("not a prompt")

    first = run(
        "prompts", "push", str(folder), "--label", "production", "-m", "init", *url, "--json"
    )
    assert first.returncode == 0, first.stderr
    assert pushed(first.stdout) == {"summarise": (1, True), "triage": (1, True)}
    again = run("prompts", "push", str(folder), "--label", "production", *url, "--json")
    assert pushed(again.stdout) == {"summarise": (1, False), "triage": (1, False)}

    write(folder, "triage", system_text(2))
    table = run("prompts", "push", str(folder), *url)
    assert table.returncode == 0, table.stderr
    assert "new version" in table.stdout and "unchanged" in table.stdout

    listed = run("prompts", "list", *url, "--json")
    assert {p["name"]: p["latest_version"] for p in json.loads(listed.stdout)} == {
        "summarise": 1,
        "triage": 2,
    }
    diff = run("prompts", "diff", "triage", "1", "2", *url)
    assert diff.returncode == 0 and "-    [v1]" in diff.stdout and "+    [v2]" in diff.stdout

    promoted = run("prompts", "promote", "triage", "2", *url)
    assert promoted.returncode == 0 and "1 → 2" in promoted.stdout
    shown = run("prompts", "show", "triage", "--label", "production", "--history", *url)
    assert shown.returncode == 0, shown.stderr
    assert "triage version 2" in shown.stdout and "label history" in shown.stdout
    rolled = run("prompts", "rollback", "triage", *url)
    assert rolled.returncode == 0 and "2 → 1" in rolled.stdout

    pulled_dir = tmp_path / "pulled"
    pulled_dir.mkdir()
    pulled = run("prompts", "pull", "triage", "--version", "2", "-o", str(pulled_dir), *url)
    assert pulled.returncode == 0, pulled.stderr
    text = (pulled_dir / "triage.yaml").read_text()
    assert text.startswith("name: triage\n") and "content: |" in text
    back = run("prompts", "push", str(pulled_dir / "triage.yaml"), *url, "--json")
    assert pushed(back.stdout) == {"triage": (2, False)}  # the same content: no new version

    write(folder, "broken", triage(messages=[{"role": "user", "content": "hi\n  {{ ticket"}]))
    write(folder, "zeta", {**system_text(5), "name": "zeta"})
    failed = run("prompts", "push", str(folder), *url)
    assert failed.returncode == 1
    assert "line 2, column 3" in failed.stderr and "broken.yaml" in failed.stderr
    assert "zeta" in failed.stdout  # the other files were pushed
    missing = run("prompts", "push", str(tmp_path / "nowhere"), *url)
    assert missing.returncode == 2 and "no such file" in missing.stderr
