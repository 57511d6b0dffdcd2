"""`opsgate datasets ...` and `opsgate review ...`, run as real processes against a real gateway:
a queue made and shown, a dataset built from scored traffic, exported to a file (every line
checked against its format), uploaded from JSONL, listed and shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.access.helpers import MASTER
from tests.cli.test_cli import run
from tests.feedback.conftest import FbStarter
from tests.feedback.formats import parse_jsonl
from tests.feedback.loop import start_loop
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)  # fifteen CLI processes, each importing the package: slow on a busy host
def test_datasets_and_review_from_the_command_line(
    db_url: str,
    feedback_gateway: FbStarter,
    upstreams: dict[str, FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    loop = start_loop(db_url, feedback_gateway, upstreams, monkeypatch)
    good = loop.ask("What is 2 + 2?", "4")
    bad = loop.ask("Capital of Australia?", "Sydney")
    loop.wait_traces([good, bad])
    loop.score(good, "thumbs", True)
    loop.score(bad, "thumbs", False, correction="Canberra.")
    loop.wait_scores(2)
    env = {"OPSGATE_MASTER_KEY": MASTER, "OPSGATE_URL": loop.base, "COLUMNS": "120"}

    made = run("review", "create", "thumbs-down", "--since", "1h", "--where", "thumbs=false",
               "--metric", "thumbs", "--reviewer", "user-a", env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "created thumbs-down" in made.stdout and ": 1 traces" in made.stdout
    listed = run("review", "queues", env=env)
    assert listed.returncode == 0 and "thumbs-down" in listed.stdout and "0/1" in listed.stdout
    shown = run("review", "show", "thumbs-down", "--json", env=env)
    assert json.loads(shown.stdout)["reviewers"] == ["user-a"]
    wrong = run("review", "create", "x", "--where", "thumbs<true", env=env)
    assert wrong.returncode == 1 and "eq or ne" in wrong.stderr
    unparsable = run("review", "create", "x", "--where", "thumbs", env=env)
    assert unparsable.returncode == 2 and "metric=value" in unparsable.stderr

    created = run("datasets", "create", "support-good", "--since", "1h", "--where",
                  "thumbs=true", "--also-corrected", env=env)  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "support-good version 1: 2 added" in created.stdout

    out = tmp_path / "train.jsonl"
    exported = run("datasets", "export", "support-good", "-o", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    assert "exported 2 lines" in exported.stderr and "tokens" in exported.stderr
    lines = parse_jsonl(out.read_bytes(), "openai-chat")
    assert {line["messages"][-1]["content"] for line in lines} == {"4", "Canberra."}
    evals = run("datasets", "export", "support-good", "--format", "eval", env=env)
    assert evals.returncode == 0, evals.stderr
    assert len(parse_jsonl(evals.stdout.encode(), "eval")) == 2

    upload = tmp_path / "rows.jsonl"
    upload.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    imported = run("datasets", "import", "copy", str(upload), "--create", env=env)
    assert imported.returncode == 0, imported.stderr
    assert "copy version 2: 2 added" in imported.stdout
    upload.write_text('{"messages": "nope"}\n')
    refused = run("datasets", "import", "copy", str(upload), env=env)
    assert refused.returncode == 1 and "line 1: messages" in refused.stderr

    listing = run("datasets", "list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "support-good" in listing.stdout and "copy" in listing.stdout
    about = run("datasets", "show", "copy", env=env)
    assert "version 2, 2 rows" in about.stdout and "import" in about.stdout
    missing = run("datasets", "show", "nope", env=env)
    assert missing.returncode == 1 and "no dataset 'nope'" in missing.stderr
