"""HTML by its structure: text of block elements on lines of their own, `h1`-`h6` open
sections, `script`/`style`/`template` and the head (but its `title`) dropped. Python's own
parser (no dependency); output is capped, so deep nesting or entity bombs stay bounded."""

from __future__ import annotations

from html.parser import HTMLParser

from opsgate.rag.parse.base import MAX_TEXT_CHARS, Parsed, ParseError, Section, decode

_BLOCK = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tr",
        "ul",
    }
)
_SKIP = frozenset({"script", "style", "template", "noscript", "head", "svg"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.skip = 0
        self.in_title = False
        self.title: list[str] = []
        self.heading: tuple[int, int, list[str]] | None = None  # (level, start, words)
        self.stack: list[tuple[int, str]] = []
        self.sections: list[Section] = [Section(0, ())]

    def _emit(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_TEXT_CHARS:
            raise ParseError(f"more than {MAX_TEXT_CHARS:,} characters of text")
        self.parts.append(text)

    def _newline(self) -> None:
        if self.parts and not self.parts[-1].endswith("\n"):
            self._emit("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _SKIP:
            self.skip += 1
            return
        if tag in _BLOCK:
            self._newline()
        if tag in _HEADINGS and not self.skip:
            self.heading = (_HEADINGS[tag], self.size, [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if tag in _HEADINGS and self.heading is not None:
            level, start, words = self.heading
            self.heading = None
            name = " ".join("".join(words).split())
            if name:
                while self.stack and self.stack[-1][0] >= level:
                    self.stack.pop()
                self.stack.append((level, name))
                section = Section(start, tuple(n for _, n in self.stack))
                if self.sections[-1].start == start:
                    self.sections[-1] = section
                else:
                    self.sections.append(section)
        if tag in _BLOCK:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if self.skip:
            return
        text = " ".join(data.split())
        if not text:
            if data and self.parts and not self.parts[-1].endswith((" ", "\n")):
                self._emit(" ")
            return
        if data[:1].isspace() and self.parts and not self.parts[-1].endswith((" ", "\n")):
            text = " " + text
        if data[-1:].isspace():
            text += " "
        if self.heading is not None:
            self.heading[2].append(text)
        self._emit(text)


def parse_html(data: bytes, where: str) -> Parsed:
    source = decode(data, where)
    extractor = _Extractor()
    try:
        extractor.feed(source)
        extractor.close()
    except ParseError as exc:
        raise ParseError(f"{where}: {exc}") from None
    text = "".join(extractor.parts)
    title = " ".join("".join(extractor.title).split()) or None
    if title is None and len(extractor.sections) > 1:
        title = extractor.sections[1].headings[-1]
    return Parsed(text, "html", title, tuple(extractor.sections))
