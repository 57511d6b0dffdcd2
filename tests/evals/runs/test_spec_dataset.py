"""Eval files, dataset rows (bad ones become failed rows) and what a target sends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsgate.evals.runs import EvalSpecError, load_spec, open_dataset, parse_spec
from opsgate.evals.runs.targets import request_body

BASE = {"name": "t", "dataset": "rows.jsonl", "targets": [{"model": "m"}], "scorers": ["exact"]}


def test_a_relative_dataset_is_read_beside_the_eval_file(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text(json.dumps(BASE))
    spec = load_spec(tmp_path / "e.yaml")
    assert spec.dataset.file == str(tmp_path / "rows.jsonl")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"targets": []}, "targets"),
        ({"targets": [{"model": "m", "prompt": "p@1"}]}, "either a `model` or a `prompt`"),
        ({"targets": [{"model": "m"}, {"model": "m"}]}, "same name"),
        ({"dataset": {"file": "a", "name": "b"}}, "one of a `file`, `rows` or a `name`"),
        ({"scorers": []}, "scorers"),
        ({"colour": "red"}, "colour"),
        ({"budget_usd": 0}, "budget_usd"),
    ],
)
def test_bad_eval_files_name_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(EvalSpecError, match=message) as info:
        parse_spec({**BASE, **change})
    assert info.value.status == 400


def test_unreadable_eval_file(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text("name: [unclosed")
    with pytest.raises(EvalSpecError, match="cannot read"):
        load_spec(tmp_path / "e.yaml")


def test_rows_stream_and_bad_rows_carry_their_reason(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "r1", "input": "hi", "expected": "hello", "context": "c"}),
        "",
        "not json",
        json.dumps(
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q?"}]}
        ),
        json.dumps({"nothing": 1}),
        json.dumps({"input": {"a": 1}}),
    ]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    spec = parse_spec({**BASE, "dataset": str(tmp_path / "rows.jsonl")})
    rows = list(open_dataset(spec.dataset).rows())
    assert [r.index for r in rows] == [0, 1, 2, 3, 4]
    assert (rows[0].id, rows[0].input, rows[0].expected, rows[0].context) == (
        "r1", "hi", "hello", "c",
    )  # fmt: skip
    assert rows[1].error == "line 2: not JSON (Expecting value)"
    assert rows[2].input == "q?" and rows[2].error is None
    assert rows[3].error == "row has no `input`, `messages` or variables"
    assert rows[4].input == '{"a": 1}'


def test_limit_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps({"input": i}) for i in range(9)))
    spec = parse_spec({**BASE, "dataset": {"file": str(tmp_path / "rows.jsonl"), "limit": 4}})
    assert len(list(open_dataset(spec.dataset).rows())) == 4
    with pytest.raises(EvalSpecError, match="does not exist"):
        open_dataset(parse_spec({**BASE, "dataset": str(tmp_path / "none.jsonl")}).dataset)
    with pytest.raises(EvalSpecError, match="needs the database"):
        open_dataset(parse_spec({**BASE, "dataset": {"name": "support", "version": 2}}).dataset)


def test_what_targets_send(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text(
        json.dumps({"input": "hi", "variables": {"topic": "refunds"}}) + "\n"
    )
    spec = parse_spec({
        **BASE, "dataset": str(tmp_path / "rows.jsonl"), "system": "be brief",
        "params": {"temperature": 0},
        "targets": [{"model": "m", "params": {"max_tokens": 5}}, {"prompt": "support@3"}],
    })  # fmt: skip
    (row,) = open_dataset(spec.dataset).rows()
    model, prompt = (request_body(spec, t, row) for t in spec.targets)
    assert model == {
        "temperature": 0, "max_tokens": 5, "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    }  # fmt: skip
    assert prompt == {
        "temperature": 0, "model": "prompt:support@3", "variables": {"topic": "refunds"},
        "messages": [],
    }  # fmt: skip
    assert spec.targets[1].label == "prompt:support@3"
