"""`opsgate eval hallucination FILE [--json]` through the real `opsgate` command."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsgate.cli.main import app
from opsgate.tools.hallucination.data import default_data_dir
from tests.fixtures.needs import need

RUNNER = CliRunner()
K = "Paris is the capital of France. Berlin is the capital of Germany."
ROWS = [
    {"knowledge": K, "question": "Capital of France?", "answer": "Paris", "label": 0},
    {"knowledge": K, "question": "Capital of Germany?", "answer": "Berlin", "label": 0},
    {"knowledge": K, "question": "Capital of France?", "answer": "It is Lyon, since 1820.",
     "label": 1},
    {"knowledge": K, "question": "Capital of Germany?", "answer": "Munich", "label": True},
]  # fmt: skip


def invoke(*args: str) -> tuple[int, str]:
    result = RUNNER.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _write(path: Path, rows: Sequence[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_json_figures_of_a_small_file(tmp_path: Path) -> None:
    code, output = invoke(
        "eval", "hallucination", str(_write(tmp_path / "r.jsonl", ROWS)), "--json"
    )
    assert code == 0, output
    body = json.loads(output)
    assert (body["rows"], body["positives"]) == (4, 2)
    assert body["precision"] == body["recall"] == body["f1"] == body["accuracy"] == 1.0
    assert 0 < body["threshold"] < 1


def test_the_table_names_every_figure(tmp_path: Path) -> None:
    code, output = invoke("eval", "hallucination", str(_write(tmp_path / "r.jsonl", ROWS)))
    assert code == 0, output
    for word in ("precision", "recall", "F1", "accuracy", "AUROC", "threshold"):
        assert word in output


def test_on_the_dev_data(tmp_path: Path) -> None:
    dev = default_data_dir() / "halueval_qa" / "dev.jsonl"
    need(dev.exists(), f"HaluEval QA missing: {dev}")
    code, output = invoke("eval", "hallucination", str(dev), "--json")
    assert code == 0, output
    body = json.loads(output)
    assert body["rows"] == 714 and body["f1"] >= 0.8  # trained on: see docs/evals.md for CV


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "expected an object"),
        ('{"knowledge": "", "question": "", "label": 1}', "`answer`"),
        ('{"knowledge": "", "question": "", "answer": "", "label": 2}', "`label` must be 0 or 1"),
    ],
)
def test_bad_rows_exit_2_naming_the_line(tmp_path: Path, line: str, message: str) -> None:
    file = tmp_path / "bad.jsonl"
    file.write_text(json.dumps(ROWS[0]) + "\n" + line + "\n")
    code, output = invoke("eval", "hallucination", str(file))
    assert code == 2
    assert "bad.jsonl:2" in output and message in output


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    code, output = invoke("eval", "hallucination", str(tmp_path / "none.jsonl"))
    assert code == 2 and "cannot read" in output
