"""Feedback tokens: a browser may score one answer without holding an API key.

With feedback configured, every chat answer carries `x-opsgate-feedback-token`: a short string,
signed with HMAC-SHA256, that names the trace, its session (if any), its team, the metrics the
token may score and when it expires. The page posts it back with the score
(`x-opsgate-feedback-token` header on `POST /v1/feedback`); the gateway checks the signature and
the expiry and scores only that trace (or its session) with only those metrics.

    ogf1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(key, "ogf1." + claims))>

Claims: `t` trace id, `s` session id or absent, `g` team id or absent, `m` metric names, `e`
expiry (epoch seconds). The token is signed, not encrypted: it holds no personal data (no end
user, no content), only ids the page already has from the response headers.

The key: `feedback.token_key` in the config, else `$OPSGATE_FEEDBACK_TOKEN_KEY`, else derived
from the master key (so replicas sharing the master key accept each other's tokens), else a
random key per process (tokens then die with the process: fine on a laptop, logged as a
warning). Rotating the key invalidates outstanding tokens, which expire within `token_ttl`
anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from opsgate.errors import AuthenticationError

log = logging.getLogger("opsgate.feedback")

HEADER = "x-opsgate-feedback-token"
KEY_ENV = "OPSGATE_FEEDBACK_TOKEN_KEY"
PREFIX = "ogf1."
MAX_TOKEN_CHARS = 4096
_DERIVE = b"opsgate feedback tokens v1"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token allows."""

    trace_id: str
    session_id: str | None
    team_id: str | None
    metrics: frozenset[str]
    expires_at: float


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_key(
    configured: str | None, master_key: str | None, env: Mapping[str, str] | None = None
) -> bytes:
    """The signing key, from the first of: config, environment, master key, random."""
    env = os.environ if env is None else env
    if configured:
        return configured.encode()
    if env.get(KEY_ENV):
        return env[KEY_ENV].encode()
    if master_key:
        return hmac.new(master_key.encode(), _DERIVE, hashlib.sha256).digest()
    log.warning(
        "feedback tokens are signed with a random per-process key (no feedback.token_key, "
        "%s or master key): tokens stop working when this process restarts",
        KEY_ENV,
    )
    return os.urandom(32)


def invalid(reason: str) -> AuthenticationError:
    return AuthenticationError(
        f"invalid feedback token: {reason}", code="invalid_feedback_token", param=HEADER
    )


class TokenSigner:
    """Issues and verifies feedback tokens with one key."""

    def __init__(self, key: bytes, ttl: float, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("a feedback token key needs at least 16 bytes")
        self._key = key
        self.ttl = ttl
        self._clock = clock

    def _sign(self, message: bytes) -> bytes:
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def issue(
        self,
        trace_id: str,
        metrics: Sequence[str],
        *,
        team_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        claims: dict[str, object] = {
            "t": trace_id,
            "m": list(metrics),
            "e": int(self._clock() + self.ttl),
        }
        if session_id:
            claims["s"] = session_id
        if team_id:
            claims["g"] = team_id
        head = PREFIX + _b64(orjson.dumps(claims))
        return f"{head}.{_b64(self._sign(head.encode()))}"

    def verify(self, token: str) -> TokenClaims:
        """The token's claims; 401 `invalid_feedback_token` when it is malformed, forged or
        signed with another key, 401 `feedback_token_expired` when it has expired."""
        if len(token) > MAX_TOKEN_CHARS or not token.startswith(PREFIX):
            raise invalid("not a feedback token from this gateway")
        head, dot, signature = token.rpartition(".")
        try:
            given = _unb64(signature)
        except (binascii.Error, ValueError):
            raise invalid("malformed signature") from None
        if not dot or not hmac.compare_digest(given, self._sign(head.encode("ascii", "replace"))):
            raise invalid("the signature does not match (forged, altered or another key)")
        claims = orjson.loads(_unb64(head[len(PREFIX) :]))  # signed by us: well-formed
        if claims["e"] <= self._clock():
            raise AuthenticationError(
                "the feedback token has expired; the answer's newer token is needed",
                code="feedback_token_expired",
                param=HEADER,
            )
        return TokenClaims(
            trace_id=claims["t"],
            session_id=claims.get("s"),
            team_id=claims.get("g"),
            metrics=frozenset(claims["m"]),
            expires_at=float(claims["e"]),
        )
