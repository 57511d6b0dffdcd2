"""Which countries a text is about: the regions its phone numbers are most likely written in.

A national-format number ("0341 8387176", "079 2718 1155") is valid in some countries and not
others, so libphonenumber needs a region. Besides the configured one, a text often names its
own: a country in an address ("... COLYTON, EX13 6XD, United Kingdom"), or a country-code
domain in an e-mail or web address (`cuvox.de`, `www.example.co.uk`).
"""

from __future__ import annotations

import re
from typing import Final

import phonenumbers

COUNTRIES: Final = {
    "united states": "US", "usa": "US", "u.s.a": "US", "america": "US", "canada": "CA",
    "united kingdom": "GB", "great britain": "GB", "england": "GB", "scotland": "GB",
    "wales": "GB", "northern ireland": "GB", "ireland": "IE", "germany": "DE",
    "deutschland": "DE", "france": "FR", "italy": "IT", "italia": "IT", "spain": "ES",
    "españa": "ES", "portugal": "PT", "netherlands": "NL", "holland": "NL", "belgium": "BE",
    "luxembourg": "LU", "switzerland": "CH", "austria": "AT", "österreich": "AT",
    "sweden": "SE", "norway": "NO", "denmark": "DK", "finland": "FI", "iceland": "IS",
    "greenland": "GL", "estonia": "EE", "latvia": "LV", "lithuania": "LT", "poland": "PL",
    "czech republic": "CZ", "czechia": "CZ", "slovakia": "SK", "slovenia": "SI",
    "hungary": "HU", "romania": "RO", "bulgaria": "BG", "greece": "GR", "cyprus": "CY",
    "croatia": "HR", "serbia": "RS", "turkey": "TR", "türkiye": "TR", "russia": "RU",
    "ukraine": "UA", "israel": "IL", "egypt": "EG", "tunisia": "TN", "morocco": "MA",
    "south africa": "ZA", "nigeria": "NG", "kenya": "KE", "india": "IN", "pakistan": "PK",
    "china": "CN", "japan": "JP", "south korea": "KR", "korea": "KR", "singapore": "SG",
    "australia": "AU", "new zealand": "NZ", "mexico": "MX", "brazil": "BR", "brasil": "BR",
    "argentina": "AR", "chile": "CL", "colombia": "CO", "uruguay": "UY", "peru": "PE",
}  # fmt: skip
"""English (and a few native) country names; the countries of the commonest traffic."""

_NAMES = re.compile(
    r"\b(?:" + "|".join(sorted(map(re.escape, COUNTRIES), key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
_DOMAIN = re.compile(r"[A-Za-z0-9-]\.([a-z]{2})(?![\w.-])", re.IGNORECASE)
_TLD_REGION: Final = {"uk": "GB", "el": "GR"}
MAX_REGIONS = 4
"""Regions kept per text (the first named); each costs a parse per unresolved candidate."""


def regions_named(text: str) -> tuple[str, ...]:
    """Regions the text names, in order of first mention, at most `MAX_REGIONS`."""
    found: dict[str, None] = {}
    for m in _NAMES.finditer(text):
        found.setdefault(COUNTRIES[m.group().lower()], None)
        if len(found) >= MAX_REGIONS:
            return tuple(found)
    for m in _DOMAIN.finditer(text):
        tld = m.group(1).lower()
        region = _TLD_REGION.get(tld, tld.upper())
        if region in phonenumbers.SUPPORTED_REGIONS:
            found.setdefault(region, None)
            if len(found) >= MAX_REGIONS:
                break
    return tuple(found)
