"""What a parser returns: the document's plain text and where its sections begin."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_TEXT_CHARS = 5_000_000
"""The most text one document may yield (a decompression bomb stops here, not in memory)."""


class ParseError(ValueError):
    """A file that cannot be read as its format (corrupt, unsupported, too large)."""


@dataclass(frozen=True, slots=True)
class Section:
    """Text from `start` up to the next section's start sits under `headings` (outermost
    first)."""

    start: int
    headings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Parsed:
    text: str
    format: str
    title: str | None = None
    sections: tuple[Section, ...] = field(default_factory=tuple)
    """In order of `start`; the first starts at 0 (an empty tuple means one section)."""


def check_size(text: str, where: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        raise ParseError(f"{where}: more than {MAX_TEXT_CHARS:,} characters of text")
    return text


def decode(data: bytes, where: str) -> str:
    """UTF-8 text (a BOM dropped); binary data is refused rather than indexed as noise."""
    if b"\x00" in data[:8192]:
        raise ParseError(f"{where}: binary data, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return check_size(text, where)


def first_line(text: str, limit: int = 200) -> str | None:
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped:
            return stripped[:limit]
    return None
