"""The PII detectors one by one: checksums and rules accept real values and refuse near misses."""

from __future__ import annotations

import pytest

from opsgate.guard.pii import Detector, checks, resolve
from opsgate.guard.verdicts import Finding

ALL = Detector(region="US")


def kinds(text: str, detector: Detector = ALL) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in detector.find(text)]


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),  # Visa test card
        ("4111111111111112", False),  # last digit off
        ("5500005555555559", True),
        ("378282246310005", True),  # Amex, 15 digits
        ("378282246310006", False),
        ("0000000000000000", True),  # Luhn alone says yes...
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert checks.luhn_valid(digits) is valid


def test_card_needs_luhn_an_issuer_prefix_or_a_card_word() -> None:
    assert checks.card_valid("4111111111111111")
    assert not checks.card_valid("0000000000000000")  # one repeated digit
    assert not checks.card_valid("41111111111")  # 11 digits: too short for a card
    assert kinds("pay with 4111 1111 1111 1111 today") == [("CREDIT_CARD", "4111 1111 1111 1111")]
    assert kinds("pay with 4111-1111-1111-1112 today") == []
    # Luhn-valid but no issuer starts with 9: only counted when the text says "card"
    number = next(f"9{n:015d}" for n in range(10**6) if checks.luhn_valid(f"9{n:015d}"))
    assert kinds(f"order id {number}") == []
    assert kinds(f"my card number is {number}") == [("CREDIT_CARD", number)]


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("GB82WEST12345698765432", True),
        ("GB82WEST12345698765433", False),  # mod 97 fails
        ("DE89370400440532013000", True),
        ("DE8937040044053201300", False),  # Germany is 22 long
        ("XX82WEST12345698765432", False),  # no such country
        ("NO9386011117947", True),
    ],
)
def test_iban_mod_97(iban: str, valid: bool) -> None:
    assert checks.iban_valid(iban) is valid


def test_iban_in_text_grouped_or_not_and_not_run_into_the_next_word() -> None:
    assert kinds("to GB82 WEST 1234 5698 7654 32 ok") == [("IBAN", "GB82 WEST 1234 5698 7654 32")]
    assert kinds("iban: de89370400440532013000.") == [("IBAN", "de89370400440532013000")]
    assert kinds("to GB82 WEST 1234 5698 7654 33 ok") == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("SSN 123-45-6789", True),
        ("SSN 078 05 1120", True),
        ("SSN 000-12-3456", False),  # area 000
        ("SSN 666-12-3456", False),  # area 666
        ("SSN 912-12-3456", False),  # 9xx areas are ITINs
        ("SSN 123-00-4567", False),  # group 00
        ("SSN 123-45-0000", False),  # serial 0000
        ("my social security number is 123456789", True),  # bare digits need the words
        ("order 123456789 shipped", False),
        ("mixed 123-45 6789", False),  # separators must agree
    ],
)
def test_us_ssn(text: str, found: bool) -> None:
    assert any(k == "US_SSN" for k, _ in kinds(text)) is found


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("AB123456C", True),
        ("AB 12 34 56 C", True),
        ("BG123456C", False),  # reserved prefix
        ("DA123456C", False),  # D is never a first letter
        ("AB123456E", False),  # suffix A-D only
    ],
)
def test_uk_nino(value: str, valid: bool) -> None:
    assert (kinds(f"NI number {value}.") == [("UK_NINO", value)]) is valid


def test_spanish_nif_and_nie_check_letter() -> None:
    assert kinds("DNI 12345678Z") == [("ES_NIF", "12345678Z")]
    assert kinds("DNI 12345678A") == []
    assert kinds("NIE X1234567L") == [("ES_NIF", "X1234567L")]


def test_french_nir_key() -> None:
    assert kinds("NIR 1 84 12 76 451 089 46") == [("FR_NIR", "1 84 12 76 451 089 46")]
    assert kinds("NIR 1 84 12 76 451 089 47") == []
    assert checks.fr_nir_valid("2690549588157" + f"{97 - 2690549588157 % 97:02d}")


def test_ip_addresses_v4_and_v6_validated() -> None:
    assert kinds("from 192.168.0.1.") == [("IP_ADDRESS", "192.168.0.1")]
    assert kinds("from 2001:db8::8a2e:370:7334 today") == [
        ("IP_ADDRESS", "2001:db8::8a2e:370:7334")
    ]
    assert kinds("from 999.1.1.1") == []  # not an address
    assert kinds("std::vector<int> and 12:30:45") == []  # C++ and clock times
    assert kinds("bind 0.0.0.0") == []  # unspecified


def test_email() -> None:
    assert kinds("write to jane.doe+news@mail.example.co.uk, thanks") == [
        ("EMAIL", "jane.doe+news@mail.example.co.uk")
    ]
    assert kinds("not an email: a@b or @handle") == []


@pytest.mark.parametrize(
    "text",
    [
        "Call me at +1 415-555-2671",
        "UK office +44 20 7946 0958",
        "(415) 555-2671 is the desk",
        "Fax: 99 668472",  # not valid in US, but a phone word says what it is
        "desk: 345-899-3560x4587",
    ],
)
def test_phone_numbers(text: str) -> None:
    assert [k for k, _ in kinds(text)] == ["PHONE"]


@pytest.mark.parametrize(
    "text",
    [
        "On 2018-01-14 03:07:41 it rained",  # a timestamp
        "the war of 1876-1877",  # years
        "Chrome 92.0.4515.107 is out",  # a version
        "we sold 1234567 units",  # no phone word, not a valid US number
    ],
)
def test_not_phone_numbers(text: str) -> None:
    assert [k for k, _ in kinds(text)] == []


def test_phone_region_decides_national_formats() -> None:
    uk = Detector(["PHONE"], region="GB")
    assert kinds("ring 020 7946 0958 now", uk) == [("PHONE", "020 7946 0958")]
    assert kinds("see 020 7946 0958 now", Detector(["PHONE"], region="US")) == []


def test_date_of_birth_needs_a_birth_cue() -> None:
    assert kinds("DOB: 03/05/1984") == [("DATE_OF_BIRTH", "03/05/1984")]
    assert kinds("I was born on 3 May 1984") == [("DATE_OF_BIRTH", "3 May 1984")]
    assert kinds("date of birth: July 9, 1964") == [("DATE_OF_BIRTH", "July 9, 1964")]
    assert kinds("the deadline is 03/05/1984") == []
    assert kinds("born on 31/02/1984") == []  # no such day


def test_types_can_be_chosen() -> None:
    only = Detector(["EMAIL"])
    assert kinds("a@example.com, SSN 123-45-6789", only) == [("EMAIL", "a@example.com")]
    with pytest.raises(ValueError, match="unknown PII types"):
        Detector(["PASSPORT"])


def test_overlaps_resolve_to_the_most_specific_check() -> None:
    # A card's digits also look like a phone number: the Luhn-checked card wins.
    assert kinds("call 4111 1111 1111 1111") == [("CREDIT_CARD", "4111 1111 1111 1111")]
    a = Finding("PHONE", 0, 10, "x")
    b = Finding("CREDIT_CARD", 2, 12, "y")
    c = Finding("EMAIL", 20, 30, "z")
    assert resolve([c, a, b]) == [b, c]
