"""Plain text: one section; the title is its first non-empty line."""

from __future__ import annotations

from opsgate.rag.parse.base import Parsed, Section, decode, first_line


def parse_text(data: bytes, where: str) -> Parsed:
    text = decode(data, where)
    return Parsed(text, "text", first_line(text), (Section(0, ()),))
