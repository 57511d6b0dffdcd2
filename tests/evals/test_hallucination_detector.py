"""The shipped detector: loads, scores supported answers low and unsupported ones high, reads
clear errors from bad files, and is exactly what the training script writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsgate.evals.hallucination import (
    MODEL_PATH,
    HallucinationDetector,
    ModelFileError,
    SupportModel,
)
from opsgate.tools.hallucination import data
from opsgate.tools.hallucination.evaluate import cross_validated
from opsgate.tools.hallucination.train import TrainConfig, digest, main
from tests.fixtures.needs import need

DETECTOR = HallucinationDetector.load()
KNOWLEDGE = (
    "The Oberoi family is an Indian family that is famous for its involvement in hotels, "
    "namely through The Oberoi Group. The Oberoi Group is a hotel company with its head office "
    "in Delhi. Founded in 1934, the company owns and operates 30+ luxury hotels."
)
QUESTION = "The Oberoi family is part of a hotel company that has a head office in what city?"


@pytest.fixture(scope="module")
def qa() -> list[data.Example]:
    root = data.default_data_dir()
    need((root / "halueval_qa" / "dev.jsonl").exists(), f"HaluEval QA missing: {root}")
    return data.load_qa(root)


@pytest.mark.parametrize(
    "answer", ["Delhi", "Its head office is in Delhi.", "The answer is Delhi, founded in 1934."]
)
def test_supported_answers_pass_in_any_form(answer: str) -> None:
    result = DETECTOR.score(KNOWLEDGE, QUESTION, answer)
    assert not result.hallucinated, result
    assert result.reasons == ()


@pytest.mark.parametrize(
    "answer",
    [
        "The Oberoi family's hotel company is based in Mumbai.",
        "Its head office is in Mumbai, founded in 1952 by Mohan Singh.",
    ],
)
def test_unsupported_answers_are_flagged_with_their_words(answer: str) -> None:
    result = DETECTOR.score(KNOWLEDGE, QUESTION, answer)
    assert result.hallucinated, result
    assert "unsupported:mumbai" in result.reasons
    assert result.score > DETECTOR.score(KNOWLEDGE, QUESTION, "Delhi").score


def test_a_threshold_can_be_overridden() -> None:
    assert HallucinationDetector.load(threshold=0.0).score("", "", "Delhi").hallucinated
    assert not HallucinationDetector.load(threshold=1.01).score("", "", "x y z").hallucinated


def test_bad_model_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot read"):
        SupportModel.load(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="cannot read"):
        SupportModel.load(tmp_path / "junk.json")
    body = json.loads(MODEL_PATH.read_text())
    (tmp_path / "other.json").write_text(json.dumps({**body, "format": "x"}))
    with pytest.raises(ModelFileError, match="not an opsgate-hallucination-lr/1"):
        SupportModel.load(tmp_path / "other.json")
    (tmp_path / "old.json").write_text(json.dumps({**body, "features": ["a"]}))
    with pytest.raises(ModelFileError, match="other features"):
        SupportModel.load(tmp_path / "old.json")
    (tmp_path / "short.json").write_text(json.dumps({**body, "weights": [1.0]}))
    with pytest.raises(ModelFileError, match="entries"):
        SupportModel.load(tmp_path / "short.json")


def test_the_training_script_reproduces_the_shipped_model_byte_for_byte(
    qa: list[data.Example], tmp_path: Path
) -> None:
    out = tmp_path / "model.json"
    assert main(["--data", str(data.default_data_dir()), "--out", str(out)]) == 0
    assert out.read_bytes() == MODEL_PATH.read_bytes()
    assert DETECTOR.model.meta["train_digest"] == digest(qa)


def test_groups_keep_an_item_and_its_extra_answers_together(qa: list[data.Example]) -> None:
    by_pair: dict[str, set[str]] = {}
    for ex in qa:
        by_pair.setdefault(ex.pair_id, set()).add(ex.group)
    assert all(len(groups) == 1 for groups in by_pair.values())
    extra = [ex for ex in qa if ex.source != "dev"]
    assert len(extra) == 356 and all(ex.label == 1 for ex in extra)
    fold_of = data.folds(qa, 5)
    side: dict[str, set[int]] = {}
    for ex, fold in zip(qa, fold_of, strict=True):
        side.setdefault(ex.group, set()).add(fold)
    assert all(len(f) == 1 for f in side.values())


def test_cross_validated_dev_figures_meet_the_target_without_the_length_shortcut(
    qa: list[data.Example],
) -> None:
    reports = {r.name: r for r in cross_validated(qa, TrainConfig())}
    detector, length = reports["detector"], reports["length_only"]
    assert detector.dev.rows == 714
    assert detector.dev.f1 >= 0.80
    # faithful answers rewritten as sentences: length-only flags them all, the detector few
    assert length.probe_flagged >= 0.95
    assert detector.probe_flagged <= 0.2
    # a threshold tuned to the benchmark's rows alone wins F1 there and flags sentence answers
    tuned = reports["detector_form_tuned"]
    assert tuned.dev.f1 > detector.dev.f1 and tuned.probe_flagged >= 0.9
