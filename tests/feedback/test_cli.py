"""`opsgate feedback send|list`, run as real processes against a real gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.access.helpers import MASTER
from tests.cli.test_cli import run
from tests.feedback.conftest import FbStarter
from tests.feedback.test_api import wait_scores

pytestmark = pytest.mark.integration


def test_send_and_list(db_url: str, feedback_gateway: FbStarter, tmp_path: Path) -> None:
    fb = feedback_gateway(db_url)
    first, second = fb.chat(), fb.chat(session="conv-c")
    env = {"OPSGATE_MASTER_KEY": MASTER, "OPSGATE_URL": fb.server.base}

    sent = run("feedback", "send", "thumbs", "false", "--trace", first.trace_id,
               "--comment", "wrong city", "--correction", "Canberra.", env=env)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert "stored sc_" in sent.stdout and "thumbs = False" in sent.stdout
    rating = run("feedback", "send", "rating", "4.5", "--trace", second.trace_id, "--json", env=env)
    assert json.loads(rating.stdout)["data"][0]["value"] == 4.5
    session = run("feedback", "send", "resolved", "true", "--session", "conv-c", env=env)
    assert session.returncode == 0, session.stderr

    bad = run("feedback", "send", "rating", "9", "--trace", first.trace_id, env=env)
    assert bad.returncode == 1 and "between 1 and 5" in bad.stderr
    unknown = run("feedback", "send", "thumbs", "true", "--trace", "f" * 32, env=env)
    assert unknown.returncode == 1 and "no trace with id" in unknown.stderr

    lines = tmp_path / "scores.jsonl"
    rows = [{"trace_id": first.trace_id, "metric": "issue", "value": "wrong"}] * 3
    lines.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    batch = run("feedback", "send", "--file", str(lines), env=env)
    assert batch.returncode == 0, batch.stderr
    assert "stored 3 scores" in batch.stdout
    lines.write_text("not json\n")
    broken = run("feedback", "send", "--file", str(lines), env=env)
    assert broken.returncode == 2 and "scores.jsonl:1" in broken.stderr

    wait_scores(fb, 6)
    listed = run("feedback", "list", "--metric", "thumbs", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "wrong city" in listed.stdout and first.trace_id in listed.stdout
    everything = json.loads(run("feedback", "list", "--json", env=env).stdout)["data"]
    assert len(everything) == 6
    paged = run("feedback", "list", "--limit", "4", env=env)
    assert "more: --cursor " in paged.stdout
    session_rows = run("feedback", "list", "--session", "conv-c", "--json", env=env)
    # A session's listing holds its session-level scores and those of its answers.
    in_session = json.loads(session_rows.stdout)["data"]
    assert sorted((s["metric"], s["trace_id"]) for s in in_session) == [
        ("rating", second.trace_id),
        ("resolved", None),
    ]
