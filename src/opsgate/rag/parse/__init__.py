"""Parsers: bytes of one file in, its plain text and sections out (`parse`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from opsgate.rag.parse.base import MAX_TEXT_CHARS, Parsed, ParseError, Section
from opsgate.rag.parse.html import parse_html
from opsgate.rag.parse.markdown import parse_markdown
from opsgate.rag.parse.pdf import parse_pdf
from opsgate.rag.parse.text import parse_text

__all__ = [
    "FORMATS",
    "MAX_TEXT_CHARS",
    "ParseError",
    "Parsed",
    "Section",
    "format_of",
    "parse",
]

Parser = Callable[[bytes, str], Parsed]
FORMATS: dict[str, Parser] = {
    "text": parse_text,
    "markdown": parse_markdown,
    "html": parse_html,
    "pdf": parse_pdf,
}
_SUFFIXES = {
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".log": "text",
    ".csv": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
}
_TYPES = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/html": "html",
    "application/pdf": "pdf",
}


def format_of(path: str, content_type: str | None = None, data: bytes = b"") -> str | None:
    """The format of a file by its content type, its suffix, then its first bytes."""
    if content_type:
        found = _TYPES.get(content_type.split(";")[0].strip().lower())
        if found:
            return found
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if data.startswith(b"%PDF-"):
        return "pdf"
    if suffix == "":
        return "text"
    return None


def parse(data: bytes, path: str, fmt: str | None = None) -> Parsed:
    """Parse one file; `ParseError` names the file and what is wrong with it."""
    name = fmt or format_of(path, data=data)
    if name is None or name not in FORMATS:
        raise ParseError(
            f"{path}: unsupported format (supported: {', '.join(sorted(FORMATS))}; "
            "by suffix .txt .md .html .pdf)"
        )
    return FORMATS[name](data, path)
