"""Dashboard sessions: a signed cookie naming the key that logged in, never the key itself.

The cookie holds `{key id, nonce, issued, expires}` and an HMAC-SHA256 over it. Nothing about
the session lives only in this process, so any replica can check it: the signing secret is
derived from the master key (replicas share it; changing it ends every session). Without a
master key the secret is random per process, so sessions end when the process does.

Every request re-reads the key (`principals.principal_for`), so a revoked, expired or disabled
key ends its sessions on the next click. Logging out also remembers the session's nonce until
it would have expired (in this process; with several replicas the cookie is cleared and the
revocation of the key is what ends a stolen session everywhere).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from dataclasses import dataclass

import orjson

COOKIE = "opsgate_session"
LOGIN_CSRF_COOKIE = "opsgate_login_csrf"
SESSION_TTL_S = 8 * 3600
"""Absolute lifetime of a session: log in again after a working day."""
_DERIVE = b"opsgate dashboard session v1"
_SKEW_S = 60.0
"""Clock difference tolerated between the replica that issued a cookie and the one reading it."""


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    """A virtual key id, `master` or `anonymous` (the open-laptop caller)."""
    nonce: str
    issued_at: float
    expires_at: float


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))


def session_secret(master_key: str | None, fallback: bytes) -> bytes:
    """The signing secret: derived from the master key when there is one, else `fallback`."""
    if master_key:
        return hmac.new(master_key.encode(), _DERIVE, hashlib.sha256).digest()
    return fallback


class SessionSigner:
    """Issues and checks session cookies and their CSRF tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\0" + data, hashlib.sha256).digest()

    def issue(self, key_id: str, now: float | None = None) -> tuple[Session, str]:
        """A fresh session for `key_id` and its cookie value."""
        now = time.time() if now is None else now
        session = Session(key_id, _b64(os.urandom(16)), now, now + SESSION_TTL_S)
        payload = _b64(orjson.dumps([session.key_id, session.nonce, now, session.expires_at]))
        return session, f"{payload}.{_b64(self._mac(b'session', payload.encode()))}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session in a cookie value, or None when it is absent, forged or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        try:
            expected, given = self._mac(b"session", payload.encode()), _unb64(mac)
            value = orjson.loads(_unb64(payload))
        except (ValueError, UnicodeEncodeError):
            return None
        if not hmac.compare_digest(expected, given) or not _well_formed(value):
            return None
        session = Session(value[0], value[1], float(value[2]), float(value[3]))
        now = time.time() if now is None else now
        fresh = session.issued_at <= now + _SKEW_S and now < session.expires_at
        return session if fresh else None

    def csrf_token(self, session: Session) -> str:
        """The token every form and htmx request of this session must send back."""
        return _b64(self._mac(b"csrf", session.nonce.encode()))

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(
            self.csrf_token(session).encode(), token.encode("utf-8", "replace")
        )


def _well_formed(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and isinstance(value[0], str)
        and isinstance(value[1], str)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value[2:])
    )


def new_login_token() -> str:
    """A random value for the login form's double-submit CSRF cookie (no session yet)."""
    return _b64(os.urandom(16))


class EndedSessions:
    """Nonces of sessions logged out here, kept until they would have expired anyway."""

    def __init__(self) -> None:
        self._ended: dict[str, float] = {}

    def end(self, session: Session, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._ended = {n: exp for n, exp in self._ended.items() if exp > now}
        self._ended[session.nonce] = session.expires_at

    def __contains__(self, session: Session) -> bool:
        return session.nonce in self._ended
