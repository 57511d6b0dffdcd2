"""Parsers: each format's text, title and sections; corrupt, binary and oversized input."""

from __future__ import annotations

import pytest

from opsgate.rag.parse import ParseError, format_of, parse
from opsgate.rag.parse.base import MAX_TEXT_CHARS
from tests.rag.pdfs import bomb_pdf, text_pdf


def test_markdown_headings_outside_code() -> None:
    doc = (
        "Intro line\n\n# Guide\n\nText.\n\n## Setup\n\n```\n# not a heading\n```\n\n"
        "Usage\n-----\n\nMore.\n"
    )
    parsed = parse(doc.encode(), "guide.md")
    assert parsed.title == "Guide"
    assert [s.headings for s in parsed.sections] == [
        (),
        ("Guide",),
        ("Guide", "Setup"),
        ("Guide", "Usage"),
    ]
    assert parsed.text == doc
    assert doc[parsed.sections[3].start :].startswith("Usage\n---")


def test_html_structure_and_dropped_parts() -> None:
    html = (
        "<html><head><title>Handbook</title><style>p{}</style></head><body>"
        "<h1>Leave</h1><p>Thirty&nbsp;days.</p><script>alert(1)</script>"
        "<h2>Sick</h2><p>Tell <b>your</b> lead.</p></body></html>"
    )
    parsed = parse(html.encode(), "h.html")
    assert parsed.title == "Handbook"
    assert "alert" not in parsed.text and "p{}" not in parsed.text
    assert "Tell your lead." in parsed.text
    assert [s.headings for s in parsed.sections] == [("Leave",), ("Leave", "Sick")]
    start = parsed.sections[1].start
    assert parsed.text[start:].startswith("Sick")


def test_pdf_pages_and_title() -> None:
    data = text_pdf(["First page about cats.", "Second page about dogs."], title="Pets")
    parsed = parse(data, "pets.pdf")
    assert parsed.title == "Pets"
    assert "cats" in parsed.text and "dogs" in parsed.text
    assert [s.headings for s in parsed.sections] == [("page 1",), ("page 2",)]
    assert parse(text_pdf(["zipped words"], compress=True), "z.pdf").text == "zipped words"


def test_corrupt_binary_unsupported() -> None:
    with pytest.raises(ParseError, match=r"bad\.pdf"):
        parse(b"%PDF-1.4\n garbage garbage", "bad.pdf")
    with pytest.raises(ParseError, match="binary"):
        parse(b"\x00\x01\x02abc", "x.txt")
    with pytest.raises(ParseError, match="UTF-8"):
        parse("caf\xe9".encode("latin-1"), "x.txt")
    with pytest.raises(ParseError, match="unsupported"):
        parse(b"PK\x03\x04", "x.docx")
    assert format_of("a.MD") == "markdown" and format_of("README") == "text"


def test_a_decompression_bomb_is_bounded() -> None:
    with pytest.raises(ParseError):
        parse(bomb_pdf(200), "bomb.pdf")  # inflates past pypdf's per-stream cap


def test_text_too_large() -> None:
    with pytest.raises(ParseError, match="characters"):
        parse(b"a" * (MAX_TEXT_CHARS + 1), "big.txt")
    deep = ("<div>" * 2000 + "x" + "</div>" * 2000).encode()
    assert parse(deep, "deep.html").text.strip() == "x"
