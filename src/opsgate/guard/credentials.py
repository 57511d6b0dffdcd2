"""Secrets: API keys with known prefixes, private key blocks, JWTs, `password=` assignments and,
as a fallback, long random-looking tokens (high Shannon entropy).

Known prefixes are near-certain; the entropy fallback is a guess, so it asks for length, a mix
of letters and digits and more than hex's 4 bits a character: a git SHA or a UUID is not a
secret, a 40-character base64 string usually is.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import math
import re
from collections import Counter
from collections.abc import Iterator

import orjson

from opsgate.guard.verdicts import Finding

_PREFIXED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rf"(?<![A-Za-z0-9_\-]){pattern}(?![A-Za-z0-9_\-])"))
    for name, pattern in (
        ("anthropic", r"sk-ant-[A-Za-z0-9_\-]{20,200}"),
        ("openai", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,200}"),
        ("stripe", r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,200}"),
        ("aws", r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"),
        ("github", r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"),
        ("gitlab", r"glpat-[A-Za-z0-9_\-]{20,64}"),
        ("slack", r"xox[abposr]-[A-Za-z0-9\-]{10,200}"),
        ("google", r"AIza[0-9A-Za-z_\-]{35}"),
        ("huggingface", r"hf_[A-Za-z0-9]{30,64}"),
        ("opsgate", r"og-[A-Za-z0-9_\-]{43,128}"),
        ("sendgrid", r"SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}"),
    )
)
_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_KEY_END = re.compile(r"-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_KEY_BODY = re.compile(r"[A-Za-z0-9+/=\s]{0,16384}")
MAX_KEY_BLOCK = 16_384
_JWT = re.compile(
    r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{5,2000}\.eyJ[A-Za-z0-9_\-]{2,8000}"
    r"\.[A-Za-z0-9_\-]{8,2000}(?![A-Za-z0-9_\-])"
)
_ASSIGNMENT = re.compile(
    r"(?i:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token"
    r"|client[_\-]?secret)[\"']?\s{0,3}[:=]\s{0,3}[\"']?(?P<value>[^\s\"',;]{8,200})"
)
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{32,512}={0,2}(?![A-Za-z0-9+/_\-])")
_PATH_LIKE = re.compile(r"[a-z]{3,}[\-/_][a-z]{3,}|/\d{1,4}/")
"""URL paths and slugs (`2020/5/14/ai-generative-models`): long and varied, but words."""
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"\d")


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s own character distribution."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _jwt_header_ok(token: str) -> bool:
    head = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        parsed = orjson.loads(raw)
    except (binascii.Error, ValueError):
        return False
    return isinstance(parsed, dict) and "alg" in parsed


def _private_keys(text: str) -> Iterator[Finding]:
    """BEGIN ... END blocks; a block cut off (no END) runs over its base64 body. END markers
    are found once and looked up, so a text of many BEGIN lines stays linear."""
    markers = list(_KEY_END.finditer(text))
    ends = [m.start() for m in markers]
    done = 0
    for m in _KEY_BEGIN.finditer(text):
        if m.start() < done:
            continue
        i = bisect.bisect_left(ends, m.end())
        if i < len(ends) and ends[i] - m.end() <= MAX_KEY_BLOCK:
            done = markers[i].end()
        else:
            body = _KEY_BODY.match(text, m.end())
            done = body.end() if body is not None else m.end()
        yield Finding("PRIVATE_KEY", m.start(), done, text[m.start() : done], 1.0)


def _encoded_text(value: str) -> bool:
    """Base64 of readable text (a smuggled instruction, a data blob) is not a key: a key decodes
    to random bytes."""
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_")
    except (binascii.Error, ValueError):
        return False
    if len(raw) < 16:
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in raw)
    return printable / len(raw) > 0.95 and b" " in raw


class SecretsDetector:
    """Finds secrets in text; `entropy_threshold=None` switches the entropy fallback off."""

    def __init__(self, *, entropy_threshold: float | None = 4.3, min_length: int = 32) -> None:
        self.entropy_threshold = entropy_threshold
        self.min_length = min_length

    def __call__(self, text: str) -> Iterator[Finding]:
        yield from self._known(text)
        if self.entropy_threshold is not None:
            yield from self._random(text)

    def _known(self, text: str) -> Iterator[Finding]:
        if "-----BEGIN" in text:
            yield from _private_keys(text)
        for _, pattern in _PREFIXED:
            for m in pattern.finditer(text):
                yield Finding("API_KEY", m.start(), m.end(), m.group(), 0.95)
        if "eyJ" in text:
            for m in _JWT.finditer(text):
                if _jwt_header_ok(m.group()):
                    yield Finding("JWT", m.start(), m.end(), m.group(), 0.95)
        for m in _ASSIGNMENT.finditer(text):
            value = m.group("value")
            if (_LETTER.search(value) and _DIGIT.search(value)) or len(value) >= 16:
                yield Finding("SECRET", m.start("value"), m.end("value"), value, 0.7)

    def _random(self, text: str) -> Iterator[Finding]:
        threshold = self.entropy_threshold
        assert threshold is not None
        for m in _TOKEN.finditer(text):
            value = m.group()
            if len(value) < self.min_length or not _DIGIT.search(value):
                continue
            if not _LETTER.search(value) or shannon_entropy(value) < threshold:
                continue
            if _PATH_LIKE.search(value) or _encoded_text(value):
                continue
            yield Finding("SECRET", m.start(), m.end(), value, 0.6)
