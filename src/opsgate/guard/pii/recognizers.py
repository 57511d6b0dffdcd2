"""Regex recognizers for structured PII, each a candidate pattern plus a validator.

Every pattern is bounded (no unbounded repeats that backtrack across the text) and guarded by a
cheap prefilter (an `@` for emails, a digit for numbers), so a large input costs one pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from opsgate.guard.pii import checks
from opsgate.guard.verdicts import Finding

Recognizer = Callable[[str], Iterator[Finding]]

_DIGIT = re.compile(r"\d")
_EMAIL = re.compile(
    r"(?<![\w.%+\-])[\w.%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}"
    r"\.[A-Za-z]{2,24}(?![\w\-])"
)
_CARD = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){11,18}(?![\d\-])")
_CARD_CUE = re.compile(r"card|visa|master|amex|credit|debit|\bcc\b|payment", re.IGNORECASE)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{2,4}){3,8}(?![A-Za-z0-9])")
_SSN = re.compile(r"(?<![\d\-])(\d{3})([\- ]?)(\d{2})\2(\d{4})(?![\d\-])")
_SSN_CUE = re.compile(r"ssn|social security|social sec", re.IGNORECASE)
_NINO = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])")
_ES_NIF = re.compile(r"(?<![A-Za-z0-9])[XYZ\d]\d{7}[\- ]?[A-Z](?![A-Za-z0-9])")
_FR_NIR = re.compile(r"(?<![\d])[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?![\d])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![0-9A-Fa-f:])"
)


def cued(text: str, start: int, cue: re.Pattern[str], window: int = 40) -> bool:
    """Whether `cue` occurs in the `window` characters before `start`."""
    return cue.search(text, max(0, start - window), start) is not None


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def emails(text: str) -> Iterator[Finding]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        yield Finding("EMAIL", m.start(), m.end(), m.group(), 0.95)


def cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        if checks.card_valid(_digits(m.group()), cued=cued(text, m.start(), _CARD_CUE)):
            yield Finding("CREDIT_CARD", m.start(), m.end(), m.group(), 0.95)


def ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        value = m.group()
        length = checks.IBAN_LENGTHS.get(value[:2].upper())
        if length is None:
            continue
        end = _end_after(value, length)  # the pattern may run on into the next word ("... ok")
        if end is None or (end < len(value) and value[end] != " "):
            continue
        if checks.iban_valid(value[:end].replace(" ", "")):
            yield Finding("IBAN", m.start(), m.start() + end, value[:end], 1.0)


def _end_after(value: str, chars: int) -> int | None:
    """The index in `value` just past its first `chars` non-space characters."""
    seen = 0
    for i, ch in enumerate(value):
        if ch != " ":
            seen += 1
            if seen == chars:
                return i + 1
    return None


def ssns(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        area, sep, group, serial = m.groups()
        if not checks.ssn_valid(area, group, serial):
            continue
        if sep or cued(text, m.start(), _SSN_CUE):  # nine bare digits need the word
            yield Finding("US_SSN", m.start(), m.end(), m.group(), 0.85 if sep else 0.7)


def ninos(text: str) -> Iterator[Finding]:
    for m in _NINO.finditer(text):
        if checks.nino_valid(m.group().replace(" ", "")):
            yield Finding("UK_NINO", m.start(), m.end(), m.group(), 0.85)


def es_nifs(text: str) -> Iterator[Finding]:
    for m in _ES_NIF.finditer(text):
        if checks.es_nif_valid(m.group().replace("-", "").replace(" ", "")):
            yield Finding("ES_NIF", m.start(), m.end(), m.group(), 0.9)


def fr_nirs(text: str) -> Iterator[Finding]:
    for m in _FR_NIR.finditer(text):
        if checks.fr_nir_valid(m.group().replace(" ", "")):
            yield Finding("FR_NIR", m.start(), m.end(), m.group(), 0.9)


def ips(text: str) -> Iterator[Finding]:
    if "." in text:
        for m in _IPV4.finditer(text):
            if checks.ip_valid(m.group()):
                yield Finding("IP_ADDRESS", m.start(), m.end(), m.group(), 0.8)
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            value = m.group()
            groups = [g for g in value.split(":") if g]
            if len(groups) >= 2 and _DIGIT.search(value) and checks.ip_valid(value):
                yield Finding("IP_ADDRESS", m.start(), m.end(), value, 0.8)


def has_digit(text: str) -> bool:
    return _DIGIT.search(text) is not None
