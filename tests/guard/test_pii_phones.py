"""Phone numbers in the national and international formats of the PII dev set (Presidio's
synthetic set: FakeNameGenerator numbers of some thirty countries), in its templates' contexts,
and in contexts with no phone word where only the country the text names can tell."""

from __future__ import annotations

import json

import pytest

from opsgate.guard.pii import Detector
from opsgate.guard.pii.regions import regions_named
from opsgate.tools.injection.data import default_data_dir
from tests.fixtures.needs import need

US = Detector(["PHONE"], region="US")
EVERYTHING = Detector(region="US")


def phones(text: str, detector: Detector = US) -> list[str]:
    return [f.value for f in detector.find(text) if f.kind == "PHONE"]


def test_every_phone_of_the_dev_set_and_nothing_else() -> None:
    path = default_data_dir() / "pii" / "dev.jsonl"
    need(path.exists(), f"PII dev set missing: {path}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    gold = found = flagged = wrong = 0
    for row in rows:
        spans = [
            (s["start_position"], s["end_position"])
            for s in row["spans"]
            if s["entity_type"] == "PHONE_NUMBER"
        ]
        got = [(f.start, f.end) for f in EVERYTHING.find(row["full_text"]) if f.kind == "PHONE"]
        gold += len(spans)
        found += sum(any(a < e and s < b for a, b in got) for s, e in spans)
        flagged += len(got)
        wrong += sum(not any(a < e and s < b for s, e in spans) for a, b in got)
    assert gold == 37 and found == gold
    assert wrong == 0 and flagged == gold


@pytest.mark.parametrize(
    ("text", "number"),
    [
        # the dev set's own templates and formats
        ("didn't get any message on my registered 905-674-3793.", "905-674-3793"),
        ("They're not answering at 78 651 450", "78 651 450"),
        ("Mobile: 03.93.92.16.85\nDesk: x", "03.93.92.16.85"),
        ("Desk: +41 (0)96 471 07 95\nFax: x", "+41 (0)96 471 07 95"),
        ("Fax: 345-899-3560x4587", "345-899-3560x4587"),
        ("Desk: +447700 921 916", "+447700 921 916"),
        ("They're not answering at 71-33-52-22", "71-33-52-22"),
        ("Desk: (898)666-3621x0135", "(898)666-3621x0135"),
        ("Fax: 001-253-366-9781", "001-253-366-9781"),
        ("my registered 0961-7596216. Could you", "0961-7596216"),
        ("my registered 668 5702. Could you", "668 5702"),
        # phone words after the number, other verbs before it
        ("079 8217 5773-Office,06-61228055-Fax", "079 8217 5773"),
        ("079 8217 5773-Office,06-61228055-Fax", "06-61228055"),
        ("0487 26 00 82 office\n721 696 029 fax", "721 696 029"),
        ("I would like to stop receiving messages to 0699 829 80 31", "0699 829 80 31"),
        ("Can someone call me on (32) 8164-5542? I have questions.", "(32) 8164-5542"),
        # six digits (Greenland) only next to a phone word
        ("Please have the manager call me at 84 17 85 today", "84 17 85"),
        # no phone word: the address names the country
        (
            "Biagio Cocci\nRue du Monument 227\nAnloy, 6890\nBelgium\n0487 26 00 82\n",
            "0487 26 00 82",
        ),
        (
            "Mustafa Golorej\n56 London Road\nCOLYTON\nUnited Kingdom\n070 3069 6240\n",
            "070 3069 6240",
        ),
        # ... or the e-mail address's country-code domain
        ("Write to anna@example.de or 0341 8387176 for the keys.", "0341 8387176"),
    ],
)
def test_phone_formats_in_context(text: str, number: str) -> None:
    assert number in phones(text)


@pytest.mark.parametrize(
    "text",
    [
        "Professor Franca 254\nSalvador, 40070-020\nBrazil.",  # a postcode
        "Astrid\n66029 138 Consul Place\nBroomfield\nNew Zealand 57006",  # address numbers
        "We sold 0487 26 00 82 units.",  # Belgian-shaped, but nothing says Belgium
        "They're not answering at 84 17",  # four digits is no number
        "Order 84 17 85 arrived",  # six digits without a phone word
        "the war of 1876-1877 and Chrome 92.0.4515.107",
    ],
)
def test_not_phone_numbers(text: str) -> None:
    assert phones(text) == []


def test_the_configured_region_still_decides_without_context() -> None:
    text = "see 020 7946 0958 now"
    assert phones(text, Detector(["PHONE"], region="GB")) == ["020 7946 0958"]
    assert phones(text) == []
    assert phones(text + " (London, United Kingdom)") == ["020 7946 0958"]


def test_regions_named_in_order_and_bounded() -> None:
    assert regions_named("From Cyprus, then Greece; mail me at a@b.co.uk") == ("CY", "GR", "GB")
    many = "Spain, France, Italy, Germany, Austria and Belgium"
    assert regions_named(many) == ("ES", "FR", "IT", "DE")
    assert regions_named("version 1.2.3 of example.com") == ()
