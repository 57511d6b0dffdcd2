"""Virtual key secrets: how they are made, recognised and hashed.

A key is `og-` followed by 32 random bytes in URL-safe base64 (43 characters, 256 bits). Only
`sha256(key)` is stored. A slow password KDF (bcrypt, scrypt, argon2) exists to stop guessing of
*low-entropy* secrets from a stolen hash; a 256-bit random secret cannot be guessed whether the
hash is fast or slow, so a plain SHA-256 gives the same protection and keeps the per-request
check at about a microsecond. The hash is also the look-up index, and every comparison of a
hash goes through `hmac.compare_digest`, also on the unknown-key path (against `DUMMY_HASH`),
so time does not say whether a key exists.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "og-"
SECRET_BYTES = 32
DISPLAY_CHARS = 8
"""Characters of the secret kept in clear after `og-` so people can tell their keys apart."""

_KEY_RE = re.compile(r"^og-[A-Za-z0-9_-]{43,128}$")

DUMMY_HASH = hashlib.sha256(b"opsgate: no such key").hexdigest()
"""Compared against on the unknown-key path so it does the same work as the known-key path."""


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_key(secret: str) -> str:
    """The stored form of a key: lower-case hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """The non-secret part shown in lists: `og-AbCdEfGh…`."""
    return secret[: len(KEY_PREFIX) + DISPLAY_CHARS]


def is_virtual_key(token: str) -> bool:
    """Whether `token` looks like one of ours (`og-` prefix); anything else is not looked up."""
    return token.startswith(KEY_PREFIX)


def well_formed(token: str) -> bool:
    return _KEY_RE.fullmatch(token) is not None


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two hex hashes."""
    return hmac.compare_digest(a.encode(), b.encode())


def new_id(kind: str) -> str:
    """A public id (`key_…`, `team_…`, `user_…`): separate from the hash, safe to show and log."""
    return f"{kind}_{secrets.token_hex(8)}"
