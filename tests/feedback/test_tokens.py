"""Feedback tokens: they verify only unaltered, unexpired, and signed with this gateway's key."""

from __future__ import annotations

import base64

import orjson
import pytest

from opsgate.errors import AuthenticationError
from opsgate.feedback.tokens import TokenSigner, token_key

KEY = b"k" * 32
TRACE = "ab" * 16


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_round_trip_carries_the_binding() -> None:
    signer = TokenSigner(KEY, ttl=60)
    token = signer.issue(TRACE, ["thumbs", "rating"], team_id="team-a", session_id="s1")
    claims = signer.verify(token)
    assert (claims.trace_id, claims.session_id, claims.team_id) == (TRACE, "s1", "team-a")
    assert claims.metrics == {"thumbs", "rating"}
    bare = signer.verify(signer.issue(TRACE, ["thumbs"]))
    assert bare.session_id is None and bare.team_id is None


def test_expired_tokens_are_refused() -> None:
    clock = Clock()
    signer = TokenSigner(KEY, ttl=60, clock=clock)
    token = signer.issue(TRACE, ["thumbs"])
    clock.now += 59
    signer.verify(token)
    clock.now += 2
    with pytest.raises(AuthenticationError) as caught:
        signer.verify(token)
    assert caught.value.code == "feedback_token_expired" and caught.value.status == 401


def test_forged_altered_and_foreign_tokens_are_refused() -> None:
    signer = TokenSigner(KEY, ttl=60)
    token = signer.issue(TRACE, ["thumbs"], team_id="team-a")
    head, signature = token.rsplit(".", 1)
    claims = orjson.loads(base64.urlsafe_b64decode(head[5:] + "=" * (-len(head[5:]) % 4)))
    claims["t"] = "cd" * 16  # another trace, same signature
    altered = "ogf1." + base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    other_key = TokenSigner(b"x" * 32, ttl=60).issue(TRACE, ["thumbs"], team_id="team-a")
    for bad in (
        f"{altered}.{signature}",
        other_key,
        token[:-2],
        "ogf1.e30.AAAA",
        "not-a-token",
        "ogf1." + "x" * 5000,
        "ogf1.e30.%%%",
    ):
        with pytest.raises(AuthenticationError) as caught:
            signer.verify(bad)
        assert caught.value.code == "invalid_feedback_token", bad


def test_key_sources() -> None:
    assert token_key("configured", "master", {}) == b"configured"
    assert token_key(None, "master", {"OPSGATE_FEEDBACK_TOKEN_KEY": "env"}) == b"env"
    derived = token_key(None, "master", {})
    assert derived == token_key(None, "master", {}) != token_key(None, "other", {})
    assert len(token_key(None, None, {})) == 32  # random per process
