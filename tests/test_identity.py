"""The caller's labels are read once and checked by the same rule as export and erasure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsgate.errors import BadRequestError
from opsgate.identity import MAX_ID_LENGTH, caller_labels, check_end_user, pseudonym


def test_header_wins_over_the_body_and_metadata_merges() -> None:
    labels = caller_labels(
        {"x-opsgate-end-user": "alice", "x-opsgate-metadata": '{"team": "red", "n": 2}'},
        {"user": "bob", "metadata": {"team": "blue", "session_id": "s-1"}},
    )
    assert labels.end_user == "alice"
    assert labels.metadata == {"team": "red", "session_id": "s-1", "n": "2"}
    assert labels.session_id == "s-1"


def test_no_labels() -> None:
    labels = caller_labels({}, {"user": ""})
    assert (labels.end_user, labels.session_id, labels.metadata) == (None, None, {})


@pytest.mark.parametrize(
    ("headers", "params", "param"),
    [
        ({}, {"user": "x" * (MAX_ID_LENGTH + 1)}, "user"),
        ({}, {"user": "a\x01b"}, "user"),
        ({}, {"user": "   "}, "user"),
        ({}, {"user": 42}, "user"),
        ({"x-opsgate-end-user": "a\tb"}, {}, "x-opsgate-end-user"),
        ({"x-opsgate-session-id": "s" * 300}, {}, "x-opsgate-session-id"),
        ({}, {"metadata": {"session_id": "a\nb"}}, "metadata.session_id"),
        ({"x-opsgate-metadata": "[1]"}, {}, "x-opsgate-metadata"),
    ],
)
def test_bad_labels_are_a_400_naming_the_field(
    headers: dict[str, str], params: dict[str, object], param: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        caller_labels(headers, params)
    assert caught.value.param == param


@given(st.text(max_size=MAX_ID_LENGTH + 20))
def test_an_accepted_end_user_is_one_erasure_accepts(user: str) -> None:
    try:
        labels = caller_labels({}, {"user": user})
    except BadRequestError:
        return
    if labels.end_user is not None:
        check_end_user(labels.end_user)  # raises if the two rules ever disagree


def test_pseudonym_is_stable_and_hides_the_id() -> None:
    assert pseudonym("end_user", "alice") == pseudonym("end_user", "alice")
    assert "alice" not in pseudonym("end_user", "alice")
    assert pseudonym("end_user", "alice") != pseudonym("end_user", "bob")
