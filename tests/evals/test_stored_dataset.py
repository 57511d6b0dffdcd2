"""Stored datasets as eval input (`dataset: {name, version}`), on SQLite and PostgreSQL: through
the admin API in the caller's scope with the version pinned and the read audited, and through
`opsgate eval run` reading the gateway's database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opsgate.cli.main import app
from tests.access.conftest import TEST_ENCRYPTION_KEY, database_url  # noqa: F401 (fixture)
from tests.access.helpers import MASTER, Client
from tests.evals.test_admin_api import wait_done
from tests.feedback.conftest import feedback_gateway  # noqa: F401 (fixture)
from tests.feedback.loop import Loop, expect, loop  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
D = "/admin/v1/datasets"
E = "/admin/v1/evals"
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
ROWS: list[dict[str, Any]] = [
    {"messages": [{"role": "system", "content": "Doc A."}, {"role": "user", "content": "q1"}],
     "output": "hello from alpha"},
    {"messages": [{"role": "user", "content": "q2"}], "output": "wrong",
     "reference": "hello from alpha"},
    {"messages": [{"role": "user", "content": "q3"}], "output": "hello from alpha",
     "reference": "a better answer", "tools": TOOLS},
]  # fmt: skip


def spec(**dataset: Any) -> dict[str, Any]:
    return {"name": "from-dataset", "dataset": {"name": "evalset", **dataset},
            "targets": [{"model": "gpt-4o-mini"}], "scorers": ["exact"],
            "concurrency": 1}  # fmt: skip


def made_dataset(lead: Client) -> None:
    expect(lead.call("POST", D, {"name": "evalset", "rows": ROWS}), 201)
    extra = {"messages": [{"role": "user", "content": "q4"}], "output": "hello from alpha"}
    expect(lead.call("POST", f"{D}/evalset/rows", {"rows": [extra]}), 201)


def test_an_api_run_reads_a_stored_dataset_version(loop: Loop) -> None:  # noqa: F811
    lead = loop.as_(loop.key("team_admin", "a"))
    made_dataset(lead)
    started = expect(lead.call("POST", E, spec()), 201)
    pinned = started["spec"]["dataset"]
    assert (pinned["name"], pinned["version"]) == ("evalset", 2)  # resumes read the same rows
    run = wait_done(lead, started["id"])
    assert run["status"] == "completed" and run["rows_done"] == 4, run
    assert run["dataset"] == "evalset@2"
    results = expect(lead.call("GET", f"{E}/{run['id']}/results"), 200)["data"]
    exact = [r["scores"]["exact"]["value"] for r in results]
    assert exact == [1.0, 1.0, 0.0, 1.0]  # reference when there is one, else the output
    sent = [r.body for r in loop.upstream.requests[-4:]]
    assert sent[0]["messages"] == ROWS[0]["messages"]
    assert sent[2]["tools"] == TOOLS and "tools" not in sent[0]
    # an explicit older version; a version it does not have; resumed runs read the same
    first = wait_done(lead, expect(lead.call("POST", E, spec(version=1)), 201)["id"])
    assert first["rows_done"] == 3 and first["dataset"] == "evalset@1"
    bad = lead.call("POST", E, spec(version=9))
    assert expect(bad, 400, "invalid_eval_spec")["error"]["message"].endswith("not 9")
    # the read is audited
    params = {"action": "datasets.read_rows", "limit": "50"}
    reads = expect(loop.as_().call("GET", "/admin/v1/audit", params=params), 200)["data"]
    assert {(e["detail"]["version"], e["detail"].get("eval")) for e in reads} >= {
        (2, "from-dataset"), (1, "from-dataset")
    }  # fmt: skip


def test_scope_and_permissions(loop: Loop) -> None:  # noqa: F811
    made_dataset(loop.as_(loop.key("team_admin", "a")))
    other = loop.as_(loop.key("team_admin", "b"))
    expect(other.call("POST", E, spec()), 404, "dataset_not_found")
    member = loop.as_(loop.key("member", "a"))  # runs evals, may not read datasets
    expect(member.call("POST", E, spec()), 403)
    expect(loop.as_().call("POST", E, {**spec(), "dataset": {"name": "nope"}}), 404)
    admin = wait_done(loop.as_(), expect(loop.as_().call("POST", E, spec()), 201)["id"])
    assert admin["status"] == "completed" and admin["rows_done"] == 4


def test_the_cli_reads_a_stored_dataset(
    loop: Loop,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made_dataset(loop.as_(loop.key("team_admin", "a")))
    path = tmp_path / "stored.yaml"
    path.write_text(json.dumps(spec(version=1, limit=2)))
    env = {"COLUMNS": "200", "OPSGATE_API_KEY": MASTER, "OPSGATE_URL": loop.base,
           "OPSGATE_DATABASE_URL": loop.fb.server.gateway.database_url,
           "OPSGATE_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY}  # fmt: skip
    result = CliRunner().invoke(app, ["eval", "run", str(path), "--json"], env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output[result.output.index("{") :])
    assert body["dataset"] == "evalset@1" and body["rows_done"] == 2
    assert body["summary"]["targets"]["gpt-4o-mini"]["scorers"]["exact"]["mean"] == 1.0
    monkeypatch.delenv("OPSGATE_ENCRYPTION_KEYS")  # rows that cannot be opened fail
    env.pop("OPSGATE_ENCRYPTION_KEYS")
    result = CliRunner().invoke(app, ["eval", "run", str(path), "--json"], env=env)
    body = json.loads(result.output[result.output.index("{") :])
    assert body["summary"]["targets"]["gpt-4o-mini"]["failed"] == 2, body
