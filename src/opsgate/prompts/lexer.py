"""The template's text cut into literal pieces and tags (`{{ }}`, `{% %}`; comments and raw
blocks resolved here), with the whitespace rules applied and every position kept for errors."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Literal

from opsgate.prompts.errors import TemplateSyntaxError

_OPEN = re.compile(r"\{\{|\{%|\{#")
_ENDRAW = re.compile(r"\{%-?\s*endraw\s*-?%\}")


class Lines:
    """Offset → (line, column), both from 1."""

    def __init__(self, source: str) -> None:
        self.starts = [0, *(m.end() for m in re.finditer("\n", source))]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


@dataclass(slots=True)
class Tag:
    kind: Literal["{{", "{%"]
    body: str
    offset: int
    """Where the tag's content starts, for positions inside it."""


def close_of(source: str, start: int, closer: str) -> int:
    """The index of `closer` after `start`, skipping quoted strings; -1 when there is none."""
    i, quote = start, ""
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif source.startswith(closer, i):
            return i
        i += 1
    return -1


def alone(source: str, start: int, end: int) -> bool:
    """Whether the tag at [start, end) is the only thing on its line (blanks aside)."""
    line_start = source.rfind("\n", 0, start) + 1
    before = source[line_start:start].strip(" \t") == ""
    after = end == len(source) or source.startswith(("\n", "\r\n"), end)
    return before and after


def tokens(source: str, lines: Lines) -> list[str | Tag]:
    """The template as text pieces and tags, whitespace control applied."""
    out: list[str | Tag] = []
    pos, strip_next = 0, False
    while True:
        found = _OPEN.search(source, pos)
        end = found.start() if found else len(source)
        text = source[pos:end]
        if strip_next:
            text = text.lstrip()
        if found is None:
            out.append(text)
            return out
        opener = found.group()
        inner = found.end()
        trim_left = source.startswith("-", inner)
        if trim_left:
            inner += 1
            text = text.rstrip()
        closer = {"{{": "}}", "{%": "%}", "{#": "#}"}[opener]
        close = close_of(source, inner, closer) if opener != "{#" else source.find("#}", inner)
        if close < 0:
            line, column = lines.at(found.start())
            raise TemplateSyntaxError(f"{opener} is never closed with {closer}", line, column)
        body_end = close
        strip_next = opener != "{#" and close > inner and source[close - 1] == "-"
        if strip_next:
            body_end -= 1
        pos = close + 2
        if opener != "{{" and alone(source, found.start(), pos):
            text = text.rstrip(" \t")  # a block tag alone on its line leaves no line behind
            pos = source.find("\n", pos) + 1 or len(source)
        out.append(text)
        if opener == "{#":
            continue
        tag = Tag("{{" if opener == "{{" else "{%", source[inner:body_end], inner)
        if tag.kind == "{%" and tag.body.strip() == "raw":
            raw_end = _ENDRAW.search(source, pos)
            if raw_end is None:
                line, column = lines.at(found.start())
                raise TemplateSyntaxError(
                    "{% raw %} is never closed with {% endraw %}", line, column
                )
            raw, pos = source[pos : raw_end.start()], raw_end.end()
            if alone(source, raw_end.start(), pos):
                raw, pos = raw.rstrip(" \t"), source.find("\n", pos) + 1 or len(source)
            out.append(raw)
            continue
        out.append(tag)
