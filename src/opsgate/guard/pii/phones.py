"""Phone numbers: a cheap candidate pattern, then libphonenumber decides.

`phonenumbers.PhoneNumberMatcher` is thorough but slow on long text; a bounded regex finds
candidates first and only those are parsed. A candidate counts when it is

1. a valid number in the configured region, or in its own when written with `+`;
2. written with `+` and of a possible length for its country code ("+41 (0)96 471 07 95":
   not an assigned range, but no other number is written like that);
3. next to a phone word: before it ("Fax: 99 668472", "call me on", "messages to") or right
   after it ("079 8217 5773-Office", "721 696 029 fax"); then six digits in groups are enough
   ("84 17 85": Greenland's numbers are that short);
4. a valid number in a region the text itself names: a country in an address, a country-code
   domain in an e-mail address (`guard.pii.regions`). National formats are valid somewhere,
   and the text says where.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import phonenumbers

from opsgate.guard.pii.recognizers import cued
from opsgate.guard.pii.regions import regions_named
from opsgate.guard.verdicts import Finding

_CANDIDATE = re.compile(
    r"(?<![\w+\-./])(?:\+ ?)?\(?\d[\d \-.()]{4,22}\d"
    r"(?:[ ]?(?:x|ext\.?|#)[ ]?\d{1,6})?(?!\w|-\d)",
    re.IGNORECASE,
)
_DATE_LIKE = re.compile(r"\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}|(?:\d{1,3}\.){3}\d{1,3}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEARS = re.compile(r"(?:1[5-9]|20)\d{2} ?- ?(?:1[5-9]|20)\d{2}")
_VERSION = re.compile(r"\d+(?:\.\d+){2,}")
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|#)[ ]?\d{1,6}$", re.IGNORECASE)
_CUE = re.compile(
    r"phone|tel\b|tel[:.]|mobile|cell|fax|desk|call|contact|whats ?app|sms|text me|dial"
    r"|number|answering|registered|reach|ring|hotline|landline|messages? to|texts? to",
    re.IGNORECASE,
)
_CUE_AFTER = re.compile(
    r"[ \t]?[-\u2013(,/]?[ \t]?(?:office|fax|mobile|cell|home|work|phone|tel|landline|direct)\b",
    re.IGNORECASE,
)
_GROUPED = re.compile(r"\d[ \-.]\d")
_POSTCODE = re.compile(r"\d{4,5}-\d{3,4}")
_WORD_AFTER = re.compile(r"[ \t]+[A-Z][a-z]")
"""A capitalised word on the same line: a street name after a house number."""


MAX_PARSES = 500
"""libphonenumber parses per text; past it, only cued candidates count (a text made of
thousands of digit groups must not cost thousands of parses)."""


class PhoneRecognizer:
    def __init__(self, region: str = "US") -> None:
        self.region = region.upper()

    def __call__(self, text: str) -> Iterator[Finding]:
        named: list[tuple[str, ...]] = []  # the text's regions, read once when first needed

        def regions() -> tuple[str, ...]:
            if not named:
                named.append(tuple(r for r in regions_named(text) if r != self.region))
            return named[0]

        for n, m in enumerate(_CANDIDATE.finditer(text)):
            value = m.group()
            score = self._score(value, text, m.start(), m.end(), regions, parse=n < MAX_PARSES)
            if score:
                yield Finding("PHONE", m.start(), m.end(), value, score)

    def _score(
        self,
        value: str,
        text: str,
        start: int,
        end: int,
        regions: Callable[[], tuple[str, ...]],
        *,
        parse: bool = True,
    ) -> float:
        core = _EXTENSION.sub("", value)
        digits = sum(ch.isdigit() for ch in core)
        if not 6 <= digits <= 15 or _DATE_LIKE.fullmatch(core.strip()):
            return 0.0
        if _ISO_DATE.match(core) or _YEARS.fullmatch(core):  # "2018-01-14 03:07", "1876-1877"
            return 0.0
        if _VERSION.fullmatch(core) and any(len(g) == 1 for g in core.split(".")):
            return 0.0  # a version number, "92.0.4515.107"
        if core.count("(") != core.count(")"):
            return 0.0
        if digits >= 7 and parse and _valid_number(value, self.region, plus_possible=True):
            return 0.9
        if cued(text, start, _CUE, window=30) or _CUE_AFTER.match(text, end):
            return 0.6 if digits >= 7 or _GROUPED.search(core) else 0.0
        if digits >= 7 and parse and any(_written_as_in(core, text, end, r) for r in regions()):
            return 0.8
        return 0.0


def _written_as_in(value: str, text: str, end: int, region: str) -> bool:
    """Valid in `region`, and not shaped like the postcode or house number of an address in
    that country ("Salvador 40070-020", "66029 138 Consul Place"): the one place where a
    country is named next to numbers that are not phone numbers."""
    if _POSTCODE.fullmatch(value.strip()) or _WORD_AFTER.match(text, end):
        return False
    return _valid_number(value, region)


def _valid_number(value: str, region: str, *, plus_possible: bool = False) -> bool:
    """Valid in `region` (or in its own, when written with `+`); with `plus_possible`, a
    `+` number of a possible length for its country code counts too."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return False
    if phonenumbers.is_valid_number(number):
        return True
    plus = value.lstrip().startswith("+")
    return plus_possible and plus and phonenumbers.is_possible_number(number)
