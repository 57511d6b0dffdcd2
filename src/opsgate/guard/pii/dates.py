"""Dates of birth: a date only counts when a birth cue stands just before it.

Dates alone are everywhere (deadlines, release notes); "born on 3 May 1984" or "DOB: 03/05/84"
is what identifies a person.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from opsgate.guard.pii.checks import date_valid
from opsgate.guard.verdicts import Finding

_CUE = re.compile(
    r"date of birth|birth ?date|birthday|\bd\.?o\.?b\b\.?|\bborn\b(?: on| in)?"
    r"|geburtsdatum|geboren(?: am)?|n[ée]e? le|fecha de nacimiento|nacid[oa] el",
    re.IGNORECASE,
)
_MONTHS = (
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
)  # fmt: skip
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]{0,6}\.?"
_DATE = re.compile(
    r"(?P<y1>\d{4})[\-/.](?P<m1>\d{1,2})[\-/.](?P<d1>\d{1,2})"
    r"|(?P<a2>\d{1,2})[\-/.](?P<b2>\d{1,2})[\-/.](?P<y2>\d{4}|\d{2})"
    rf"|(?P<d3>\d{{1,2}})(?:st|nd|rd|th)?\s(?:of\s)?(?P<m3>{_MONTH})\s?,?\s(?P<y3>\d{{4}})"
    rf"|(?P<m4>{_MONTH})\s(?P<d4>\d{{1,2}})(?:st|nd|rd|th)?,?\s(?P<y4>\d{{4}})",
    re.IGNORECASE,
)
_WINDOW = 40
_LONGEST = 32
"""Characters the longest date form takes (`30th of September, 1984`)."""


def _month(name: str) -> int:
    return _MONTHS.index(name[:3].lower()) + 1


def _valid(m: re.Match[str]) -> bool:
    g = m.groupdict()
    if g["y1"]:
        return date_valid(int(g["y1"]), int(g["m1"]), int(g["d1"]))
    if g["y2"]:
        a, b, y = int(g["a2"]), int(g["b2"]), int(g["y2"])
        return date_valid(y, b, a) or date_valid(y, a, b)  # day-first or month-first
    if g["y3"]:
        return date_valid(int(g["y3"]), _month(g["m3"]), int(g["d3"]))
    return date_valid(int(g["y4"]), _month(g["m4"]), int(g["d4"]))


def dates_of_birth(text: str) -> Iterator[Finding]:
    end = -1
    for cue in _CUE.finditer(text):
        m = _DATE.search(text, cue.end(), cue.end() + _WINDOW + _LONGEST)
        if m is None or m.start() > cue.end() + _WINDOW:
            continue
        if m.start() > end and _valid(m):
            end = m.end()
            yield Finding("DATE_OF_BIRTH", m.start(), m.end(), m.group(), 0.85)
