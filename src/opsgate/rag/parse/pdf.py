"""PDF through pypdf (pure Python, BSD): one section per page (`page N`), the title from the
document's metadata. pypdf caps each decompressed stream (75 MB); the page count and the
text are capped here, so a decompression bomb fails this file and nothing else."""

from __future__ import annotations

import io
import logging

from opsgate.rag.parse.base import MAX_TEXT_CHARS, Parsed, ParseError, Section, first_line

MAX_PAGES = 2000


def parse_pdf(data: bytes, where: str) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # it warns about every odd object
    parts: list[str] = []
    sections: list[Section] = []
    size = 0
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise ParseError(f"{where}: an encrypted PDF")
        if len(reader.pages) > MAX_PAGES:
            raise ParseError(f"{where}: more than {MAX_PAGES} pages")
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if not text:
                continue
            if parts:
                parts.append("\n\n")
                size += 2
            sections.append(Section(size, (f"page {number}",)))
            parts.append(text)
            size += len(text)
            if size > MAX_TEXT_CHARS:
                raise ParseError(f"{where}: more than {MAX_TEXT_CHARS:,} characters of text")
        meta_title = reader.metadata.title if reader.metadata is not None else None
    except ParseError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, MemoryError) as exc:
        raise ParseError(f"{where}: not a readable PDF ({type(exc).__name__}: {exc})") from None
    text = "".join(parts)
    if not sections:
        sections.append(Section(0, ()))
    title = str(meta_title).strip() if meta_title else first_line(text)
    return Parsed(text, "pdf", title or None, tuple(sections))
