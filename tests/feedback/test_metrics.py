"""Checking scores against the declared metrics: every bad value is a 400 (or 413) naming its
field, before anything is looked up."""

from __future__ import annotations

from typing import Any

import pytest

from opsgate.config.feedback import FeedbackConfig
from opsgate.errors import BadRequestError, OpsgateError, PayloadTooLargeError
from opsgate.feedback.metrics import parse_score, scores_of

CONFIG = FeedbackConfig.model_validate(
    {
        "metrics": {
            "thumbs": {"type": "boolean"},
            "rating": {"type": "float", "min": 1, "max": 5},
            "resolved": {"type": "boolean", "level": "session"},
            "issue": {"type": "category", "values": ["wrong", "unsafe"]},
            "note": {"type": "comment"},
        },
        "max_batch": 3,
        "max_comment_chars": 20,
        "max_correction_chars": 60,
    }
)
T = "0" * 32


def refused(data: Any) -> OpsgateError:
    with pytest.raises(OpsgateError) as caught:
        scores_of(data, CONFIG)
    return caught.value


def test_each_type_becomes_its_column() -> None:
    assert parse_score({"metric": "thumbs", "trace_id": T, "value": False}, CONFIG, "").value == 0.0
    rating = parse_score({"metric": "rating", "trace_id": T, "value": 4}, CONFIG, "")
    assert rating.value == 4.0 and rating.type == "float"
    issue = parse_score({"metric": "issue", "trace_id": T, "value": "wrong"}, CONFIG, "")
    assert (issue.label, issue.value) == ("wrong", None)
    note = parse_score({"metric": "note", "trace_id": T, "value": "too terse"}, CONFIG, "")
    assert note.comment == "too terse"
    session = parse_score({"metric": "resolved", "session_id": "s1", "value": True}, CONFIG, "")
    assert (session.level, session.session_id, session.trace_id) == ("session", "s1", None)


def one(metric: str = "thumbs", **fields: Any) -> dict[str, Any]:
    return {"metric": metric, "trace_id": T, "value": True, **fields}


@pytest.mark.parametrize(
    ("item", "param", "code"),
    [
        (one("stars"), "metric", "unknown_metric"),
        ({"trace_id": T, "value": 1}, "metric", "missing_required_parameter"),
        ({"metric": "thumbs", "trace_id": T}, "value", "missing_required_parameter"),
        (one(value=1), "value", "invalid_type"),
        (one(value="yes"), "value", "invalid_type"),
        (one("rating", value=6), "value", "invalid_value"),
        (one("rating", value=0.5), "value", "invalid_value"),
        (one("rating", value=True), "value", "invalid_type"),
        (one("rating", value="4"), "value", "invalid_type"),
        (one("issue", value="rude"), "value", "invalid_value"),
        (one("issue", value=2), "value", "invalid_type"),
        (one("note", value=""), "value", "invalid_value"),
        ({"metric": "thumbs", "value": True}, "trace_id", "missing_required_parameter"),
        (one(trace_id=7), "trace_id", "invalid_type"),
        (one(trace_id="a\nb"), "trace_id", "invalid_id"),
        ({"metric": "resolved", "value": True}, "session_id", "missing_required_parameter"),
        (one(colour=1), "colour", "unknown_field"),
        (one(source="boss"), "source", "invalid_value"),
        (one(metadata={"a": 1}), "metadata.a", "invalid_type"),
        (one("note", value="x", comment="y"), "comment", "invalid_value"),
        (one(correction=5), "correction", "invalid_type"),
        (one(correction={"role": "user", "content": "x"}), "correction.role", "invalid_value"),
        (
            one(correction={"role": "assistant"}),
            "correction.content",
            "missing_required_parameter",
        ),
    ],
)
def test_bad_scores_name_their_field(item: dict[str, Any], param: str, code: str) -> None:
    error = refused(item)
    assert isinstance(error, BadRequestError)
    assert (error.param, error.code, error.status) == (param, code, 400)
    batch = refused({"scores": [{"metric": "thumbs", "trace_id": T, "value": True}, item]})
    assert batch.param == f"scores[1].{param}"


def test_limits_answer_413() -> None:
    one = {"metric": "thumbs", "trace_id": T, "value": True}
    too_many = refused({"scores": [one] * 4})
    assert isinstance(too_many, PayloadTooLargeError) and too_many.code == "too_many_scores"
    long = refused({**one, "comment": "x" * 21})
    assert isinstance(long, PayloadTooLargeError) and long.param == "comment"
    long_fix = refused({**one, "correction": "y" * 61})
    assert isinstance(long_fix, PayloadTooLargeError) and long_fix.param == "correction"
    assert refused({"scores": []}).param == "scores"
    assert refused({"scores": [one], "extra": 1}).param == "extra"
    assert refused({"scores": ["thumbs"]}).param == "scores[0]"


def test_corrections_are_assistant_messages() -> None:
    text = parse_score(
        {"metric": "thumbs", "trace_id": T, "value": False, "correction": "Paris."}, CONFIG, ""
    )
    assert text.correction == {"role": "assistant", "content": "Paris."}
    parts = [{"type": "text", "text": "Paris"}]
    message = parse_score(
        {"metric": "thumbs", "trace_id": T, "value": False, "correction": {"content": parts}},
        CONFIG,
        "",
    )
    assert message.correction == {"role": "assistant", "content": parts}


def test_config_rejects_inconsistent_metrics() -> None:
    for bad in (
        {"metrics": {"x": {"type": "boolean", "min": 1}}},
        {"metrics": {"x": {"type": "float", "min": 5, "max": 1}}},
        {"metrics": {"x": {"type": "category"}}},
        {"metrics": {"x": {"type": "category", "values": ["a", "a"]}}},
        {"metrics": {"x": {"type": "float", "values": ["a"]}}},
        {"metrics": {"bad name": {"type": "boolean"}}},
        {"metrics": {"x": {"type": "boolean"}}, "token_metrics": ["y"]},
        {"metrics": {"x": {"type": "stars"}}},
        {"token_ttl": "soon"},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 (pydantic's ValidationError)
            FeedbackConfig.model_validate(bad)
    assert FeedbackConfig.model_validate({"token_ttl": "2h"}).token_ttl == 7200
