"""`opsgate eval run|show|list|compare` end to end: a real gateway (master key as the service
key) in front of a fake upstream, results in a real SQLite file; resume, budget, the CI gate,
JUnit XML, failed rows, judges through the gateway."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from opsgate.cli.main import app
from tests.api.test_openai_compat import oa, one_model
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration

KEY = "og-master"
RUNNER = CliRunner()
ROWS = [
    {"id": "r0", "input": "say hello", "expected": "hello from alpha"},
    {"id": "r1", "input": "greet me", "expected": "hello from alpha"},
    {"id": "r2", "input": "and again", "expected": "something else"},
    {"id": "r3", "input": "no reference"},
]


@pytest.fixture
def gw(gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]) -> GatewayServer:
    price = {"input": 1_000_000, "output": 1_000_000}  # $1 a token
    config = one_model(oa("a", upstreams["alpha"], price=price))
    return gateway(config, {"OPSGATE_MASTER_KEY": KEY})  # type: ignore[call-arg]


def write_eval(tmp_path: Path, rows: list[Any] | None = None, **spec: Any) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in (rows or ROWS)]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    body = {"name": "support", "dataset": "rows.jsonl", "targets": [{"model": "m"}],
            "scorers": ["exact", {"type": "contains", "values": ["hello"]}], "concurrency": 1,
            **spec}  # fmt: skip
    path = tmp_path / "support.yaml"
    path.write_text(json.dumps(body))
    return path


def invoke(gw: GatewayServer, tmp_path: Path, *args: str) -> tuple[int, str]:
    db = f"sqlite:///{tmp_path}/evals.db"
    env = {"COLUMNS": "200", "OPSGATE_API_KEY": KEY, "OPSGATE_URL": gw.base,
           "OPSGATE_DATABASE_URL": db}  # fmt: skip
    result = RUNNER.invoke(app, ["eval", *args], env=env)
    return result.exit_code, result.output


def run_json(gw: GatewayServer, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, output = invoke(gw, tmp_path, "run", *args, "--json")
    start = output.index("{")
    return code, json.loads(output[start : output.rindex("}") + 1])


def test_a_run_scores_every_row_through_the_gateway(
    gw: GatewayServer, tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> None:
    code, body = run_json(gw, tmp_path, str(write_eval(tmp_path)))
    assert code == 0, body
    assert body["status"] == "completed" and body["rows_done"] == 4
    target = body["summary"]["targets"]["m"]
    assert (target["rows"], target["failed"]) == (4, 0)
    # each answer is "hello from alpha" (3 tokens) for a 2-word prompt: $5 a row
    assert target["cost_usd"] == pytest.approx(4 * 5.0)
    exact = target["scorers"]["exact"]
    assert (exact["n"], exact["mean"], exact["failed"]) == (3, pytest.approx(2 / 3), 1)
    assert target["scorers"]["contains"]["mean"] == 1.0
    requests = upstreams["alpha"].requests
    assert len(requests) == 4
    assert requests[0].body["messages"] == [{"role": "user", "content": "say hello"}]
    code, output = invoke(gw, tmp_path, "show", body["id"])
    assert code == 0 and "exact" in output and "0.667" in output
    code, output = invoke(gw, tmp_path, "list")
    assert code == 0 and body["id"] in output


def test_the_gate_and_junit(gw: GatewayServer, tmp_path: Path) -> None:
    junit = tmp_path / "out.xml"
    args = [str(write_eval(tmp_path)), "--fail-under", "exact=0.9", "--junit", str(junit)]
    code, body = run_json(gw, tmp_path, *args)
    assert code == 1
    assert body["gate"][0] == {"target": "m", "scorer": "exact", "mean": pytest.approx(2 / 3),
                               "threshold": 0.9, "passed": False}  # fmt: skip
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("tests") == "2"
    code, _ = run_json(gw, tmp_path, str(write_eval(tmp_path)), "--fail-under", "contains=1")
    assert code == 0
    code, output = invoke(gw, tmp_path, "run", str(write_eval(tmp_path)), "--fail-under", "x=1")
    assert code == 2 and "names no scorer" in output
    code, output = invoke(gw, tmp_path, "run", str(write_eval(tmp_path)), "--fail-under", "x")
    assert code == 2 and "NAME=NUMBER" in output


def test_bad_rows_and_failed_calls_are_failed_results(gw: GatewayServer, tmp_path: Path) -> None:
    rows = [ROWS[0], "not json", {"nothing": 1}]
    spec = write_eval(tmp_path, rows, targets=[{"model": "m"}, {"model": "nope"}])
    code, body = run_json(gw, tmp_path, str(spec))
    assert code == 0 and body["status"] == "completed"
    targets = body["summary"]["targets"]
    assert (targets["m"]["rows"], targets["m"]["failed"]) == (3, 2)
    assert (targets["nope"]["rows"], targets["nope"]["failed"]) == (3, 3)


def test_budget_stops_the_run_and_resume_finishes_it(
    gw: GatewayServer, tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> None:
    code, body = run_json(gw, tmp_path, str(write_eval(tmp_path, budget_usd=7)))
    assert code == 3 and body["status"] == "budget_exceeded"
    assert body["rows_done"] == 2  # $5 each: the second passes $7, and nothing starts after it
    run_id = body["id"]
    code, body = run_json(gw, tmp_path, str(write_eval(tmp_path)), "--resume", run_id)
    assert code == 0 and body["status"] == "completed" and body["id"] == run_id
    assert body["rows_done"] == 4
    assert len(upstreams["alpha"].requests) == 4  # no row was asked twice


def test_compare_two_runs(
    gw: GatewayServer, tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> None:
    _, first = run_json(gw, tmp_path, str(write_eval(tmp_path)))
    upstreams["alpha"].default = Reply("something else")
    code, second = run_json(gw, tmp_path, str(write_eval(tmp_path)), "--compare", first["id"])
    assert code == 0
    exact = next(c for c in second["compare"] if c["scorer"] == "exact")
    # rows 0-2 paired: [1, 1, 0] before, [0, 0, 1] now
    assert (exact["n"], exact["mean_a"], exact["mean_b"]) == (3, pytest.approx(2 / 3),
                                                              pytest.approx(1 / 3))  # fmt: skip
    code, output = invoke(gw, tmp_path, "compare", first["id"], second["id"])
    assert code == 0 and "paired bootstrap" in output


def test_a_judge_calls_through_the_gateway(
    gw: GatewayServer, tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> None:
    upstreams["alpha"].default = Reply('{"reasoning": "fine", "score": 4}')
    judge = {"type": "judge", "template": "relevance", "model": "m"}
    code, body = run_json(gw, tmp_path, str(write_eval(tmp_path, scorers=[judge])))
    assert code == 0
    relevance = body["summary"]["targets"]["m"]["scorers"]["relevance"]
    assert (relevance["n"], relevance["mean"]) == (4, 0.75)
    judged = [r for r in upstreams["alpha"].requests if "evaluator" in json.dumps(r.body)]
    assert len(judged) == 4
    assert body["summary"]["targets"]["m"]["cost_usd"] > 4 * 5.0  # judge calls are costed


def test_missing_key_and_bad_files(gw: GatewayServer, tmp_path: Path) -> None:
    spec = write_eval(tmp_path)
    result = RUNNER.invoke(app, ["eval", "run", str(spec)], env={"OPSGATE_API_KEY": ""})
    assert result.exit_code == 2 and "service key" in result.output
    (tmp_path / "bad.yaml").write_text("name: x\ntargets: []\n")
    code, output = invoke(gw, tmp_path, "run", str(tmp_path / "bad.yaml"))
    assert code == 2 and "targets" in output
    code, output = invoke(gw, tmp_path, "run", str(write_eval(tmp_path, scorers=["nope"])))
    assert code == 2 and "unknown scorer type 'nope'" in output


def test_recorded_scores_land_in_the_one_score_store(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], tmp_path: Path, db_url: str
) -> None:
    config = one_model(oa("a", upstreams["alpha"]))
    metrics = {"exact_match": {"type": "float", "min": 0, "max": 1}}
    config["feedback"] = {"metrics": metrics, "trace_wait": 0.3, "flush_interval": 0.05}
    server = gateway(config, {"OPSGATE_MASTER_KEY": KEY})  # type: ignore[call-arg]
    spec = write_eval(tmp_path, ROWS[:3], record_scores={"exact": "exact_match"})
    code, body = run_json(server, tmp_path, str(spec))
    assert code == 0, body
    assert body["scores_recorded"] == {"sent": 3, "refused": 0, "error": None}
    path = db_url.removeprefix("sqlite:///")
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT metric, source, value, trace_id FROM scores").fetchall()
        if len(rows) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sorted((m, s, v) for m, s, v, _ in rows) == [
        ("exact_match", "evaluator", 0.0), ("exact_match", "evaluator", 1.0),
        ("exact_match", "evaluator", 1.0),
    ]  # fmt: skip
    assert all(t for *_, t in rows)
    spec = write_eval(tmp_path, ROWS[:1], record_scores=["exact"])  # not a declared metric
    code, body = run_json(server, tmp_path, str(spec))
    assert code == 0 and body["scores_recorded"]["refused"] == 1
    assert "unknown metric 'exact'" in body["scores_recorded"]["error"]
