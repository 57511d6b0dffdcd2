"""Session cookies and CSRF tokens: signed, expiring, bound to one session, never the key."""

from __future__ import annotations

import base64

import orjson

from opsgate.ui.sessions import (
    SESSION_TTL_S,
    EndedSessions,
    SessionSigner,
    session_secret,
)

NOW = 1_800_000_000.0


def test_a_cookie_reads_back_until_it_expires() -> None:
    signer = SessionSigner(b"s" * 32)
    session, cookie = signer.issue("key_abc", now=NOW)
    assert "key_abc" not in cookie  # base64 payload, but never a secret in it anyway
    assert signer.read(cookie, now=NOW + 10) == session
    assert signer.read(cookie, now=NOW + SESSION_TTL_S - 1) == session
    assert signer.read(cookie, now=NOW + SESSION_TTL_S) is None
    assert signer.read(cookie, now=NOW - 3600) is None, "issued in the future"


def test_forged_and_malformed_cookies_are_refused() -> None:
    signer = SessionSigner(b"s" * 32)
    _, cookie = signer.issue("key_abc", now=NOW)
    payload, mac = cookie.split(".")
    other = orjson.dumps(["master", "n", NOW, NOW + 99]).decode()
    swapped = base64.urlsafe_b64encode(other.encode()).decode().rstrip("=")
    for bad in (
        None,
        "",
        "garbage",
        f"{swapped}.{mac}",
        f"{payload}.{mac[:-2]}",
        f"{payload}.{mac}.x",
        f"{payload}.!!!",
        "é.é",
    ):
        assert signer.read(bad, now=NOW) is None, bad
    assert SessionSigner(b"t" * 32).read(cookie, now=NOW) is None, "another secret"


def test_a_well_signed_cookie_with_a_wrong_shape_is_refused() -> None:
    signer = SessionSigner(b"s" * 32)
    for value in ([1, "n", NOW, NOW + 1], ["k", "n", True, NOW + 1], {"k": 1}, ["k", "n", NOW]):
        payload = base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")
        mac = signer._mac(b"session", payload.encode())
        cookie = f"{payload}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
        assert signer.read(cookie, now=NOW) is None, value


def test_csrf_tokens_belong_to_one_session() -> None:
    signer = SessionSigner(b"s" * 32)
    one, _ = signer.issue("key_abc", now=NOW)
    two, _ = signer.issue("key_abc", now=NOW)
    token = signer.csrf_token(one)
    assert signer.check_csrf(one, token)
    assert not signer.check_csrf(two, token)
    assert not signer.check_csrf(one, None)
    assert not signer.check_csrf(one, "")
    assert not signer.check_csrf(one, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not signer.check_csrf(one, "é" * 10)


def test_secret_follows_the_master_key() -> None:
    fallback = b"f" * 32
    assert session_secret(None, fallback) == fallback
    a, b = session_secret("master-a", fallback), session_secret("master-b", fallback)
    assert a != b and a != fallback and a == session_secret("master-a", b"other")
    assert b"master-a" not in a


def test_ended_sessions_are_remembered_until_they_expire() -> None:
    signer = SessionSigner(b"s" * 32)
    ended = EndedSessions()
    old, _ = signer.issue("k", now=NOW - SESSION_TTL_S - 10)
    live, _ = signer.issue("k", now=NOW)
    ended.end(old, now=NOW - 20)
    assert old in ended and live not in ended
    ended.end(live, now=NOW)  # sweeps the one that expired
    assert live in ended and old not in ended
