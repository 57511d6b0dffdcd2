"""Markdown by its headings: ATX (`## Title`) and setext (a line underlined with `===`/`---`),
never inside fenced code. The text is kept as written, so chunk offsets point into the file."""

from __future__ import annotations

import re

from opsgate.rag.parse.base import Parsed, Section, decode, first_line

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def parse_markdown(data: bytes, where: str) -> Parsed:
    text = decode(data, where)
    return Parsed(text, "markdown", *_outline(text))


def _outline(text: str) -> tuple[str | None, tuple[Section, ...]]:
    sections = [Section(0, ())]
    stack: list[tuple[int, str]] = []
    fence: str | None = None
    offset = 0
    previous: tuple[int, str] | None = None  # (offset, line) of the last plain line
    title: str | None = None
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        opened = _FENCE.match(bare)
        heading: tuple[int, str, int] | None = None  # (level, text, start offset)
        if fence is not None:
            if opened and opened.group(1) == fence:
                fence = None
        elif opened:
            fence = opened.group(1)
        elif match := _ATX.match(bare):
            heading = (len(match.group(1)), match.group(2).strip(), offset)
        elif previous is not None and (match := _SETEXT.match(bare)):
            level = 1 if match.group(1).startswith("=") else 2
            heading = (level, previous[1].strip(), previous[0])
        if heading is not None and heading[1]:
            level, name, start = heading
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, name))
            title = title or (name if level == 1 else None)
            if sections[-1].start == start:
                sections[-1] = Section(start, tuple(n for _, n in stack))
            else:
                sections.append(Section(start, tuple(n for _, n in stack)))
            previous = None
        else:
            previous = (offset, bare) if bare.strip() and fence is None else None
        offset += len(line)
    return title or first_line(text), tuple(sections)
