"""Phone numbers: a cheap candidate pattern, then libphonenumber decides.

`phonenumbers.PhoneNumberMatcher` is thorough but slow on long text; a bounded regex finds
candidates first and only those are parsed. A candidate that is not a valid number in the
configured default region (nor in its own, when written with `+`) still counts when a phone
word stands right before it ("Fax: 99 668472"): national formats of other countries are valid
somewhere, and the word says what they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers

from opsgate.guard.pii.recognizers import cued
from opsgate.guard.verdicts import Finding

_CANDIDATE = re.compile(
    r"(?<![\w+\-./])(?:\+ ?)?\(?\d[\d \-.()]{4,22}\d"
    r"(?:[ ]?(?:x|ext\.?|#)[ ]?\d{1,6})?(?![\w\-])",
    re.IGNORECASE,
)
_DATE_LIKE = re.compile(r"\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}|(?:\d{1,3}\.){3}\d{1,3}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEARS = re.compile(r"(?:1[5-9]|20)\d{2} ?- ?(?:1[5-9]|20)\d{2}")
_VERSION = re.compile(r"\d+(?:\.\d+){2,}")
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|#)[ ]?\d{1,6}$", re.IGNORECASE)
_CUE = re.compile(
    r"phone|tel\b|tel[:.]|mobile|cell|fax|desk|call|contact|whats ?app|sms|text me|dial"
    r"|number|answering|registered|reach|ring|hotline|landline",
    re.IGNORECASE,
)


MAX_PARSES = 500
"""libphonenumber parses per text; past it, only cued candidates count (a text made of
thousands of digit groups must not cost thousands of parses)."""


class PhoneRecognizer:
    def __init__(self, region: str = "US") -> None:
        self.region = region.upper()

    def __call__(self, text: str) -> Iterator[Finding]:
        for n, m in enumerate(_CANDIDATE.finditer(text)):
            value = m.group()
            score = self._score(value, text, m.start(), parse=n < MAX_PARSES)
            if score:
                yield Finding("PHONE", m.start(), m.end(), value, score)

    def _score(self, value: str, text: str, start: int, *, parse: bool = True) -> float:
        core = _EXTENSION.sub("", value)
        digits = sum(ch.isdigit() for ch in core)
        if not 7 <= digits <= 15 or _DATE_LIKE.fullmatch(core.strip()):
            return 0.0
        if _ISO_DATE.match(core) or _YEARS.fullmatch(core):  # "2018-01-14 03:07", "1876-1877"
            return 0.0
        if _VERSION.fullmatch(core) and any(len(g) == 1 for g in core.split(".")):
            return 0.0  # a version number, "92.0.4515.107"
        if core.count("(") != core.count(")"):
            return 0.0
        if parse and _valid_number(value, self.region):
            return 0.9
        if cued(text, start, _CUE, window=30):
            return 0.6
        return 0.0


def _valid_number(value: str, region: str) -> bool:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))
