"""Checksums and structure rules that turn a regex candidate into a finding.

A pattern alone matches any long number; these are what keep precision: a random 16-digit
number passes Luhn one time in ten, a random IBAN-shaped string mod 97 one time in 97.
"""

from __future__ import annotations

import datetime
import ipaddress

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
"""Country code → IBAN length (the SWIFT registry)."""

_NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number carries."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def card_valid(digits: str, *, cued: bool = False) -> bool:
    """12-19 digits, Luhn, and (unless the text says "card") an issuer prefix that exists."""
    if not 12 <= len(digits) <= 19 or not luhn_valid(digits) or len(set(digits)) == 1:
        return False
    if cued:
        return True
    first = digits[0]
    if first in "3456":
        return True
    if first == "2":  # Mastercard 2221-2720, JCB 2131, enRoute 2014/2149
        return 2221 <= int(digits[:4]) <= 2720 or digits[:4] in ("2131", "2014", "2149")
    return digits.startswith("1800")


def iban_valid(compact: str) -> bool:
    """ISO 13616: known country, its length, and the mod-97 check equals 1."""
    iban = compact.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    if not iban.isalnum() or not iban.isascii():
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: no area 000, 666 or 9xx, no group 00, no serial 0000."""
    return (
        area not in ("000", "666")
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
    )


def nino_valid(compact: str) -> bool:
    """UK National Insurance number: two prefix letters (with exclusions), six digits, A-D."""
    nino = compact.upper()
    if len(nino) != 9 or not nino[2:8].isdigit() or nino[8] not in "ABCD":
        return False
    first, second = nino[0], nino[1]
    if first in "DFIQUV" or second in "DFIOQUV":
        return False
    return nino[:2] not in _NINO_BAD_PREFIXES


def es_nif_valid(compact: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): the mod-23 letter."""
    value = compact.upper()
    if len(value) != 9:
        return False
    body, letter = value[:8], value[8]
    if body[0] in "XYZ":
        body = str("XYZ".index(body[0])) + body[1:]
    return body.isdigit() and _NIF_LETTERS[int(body) % 23] == letter


def fr_nir_valid(compact: str) -> bool:
    """French social security number (NIR): 13 characters and a two-digit mod-97 key."""
    if len(compact) != 15 or compact[0] not in "12":
        return False
    body, key = compact[:13].upper(), compact[13:]
    body = body.replace("2A", "19").replace("2B", "18")
    if not body.isdigit() or not key.isdigit():
        return False
    return 97 - int(body) % 97 == int(key)


def ip_valid(candidate: str) -> bool:
    """A real IPv4 or IPv6 address (the unspecified address `0.0.0.0`/`::` is not one)."""
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return not address.is_unspecified


def date_valid(year: int, month: int, day: int) -> bool:
    if year < 100:
        year += 1900 if year > 30 else 2000
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return 1880 <= year <= datetime.date.today().year
