"""README.md and docs/*.md render as tables where they mean tables.

A Markdown parser is lenient: a row with an unescaped `|` (`bucket=minute|hour`) silently loses
its extra cells, and a blank line inside a table turns the rows after it into a paragraph of
pipes. So every table row of the source is counted against its header, and no paragraph may
look like a table row.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_PIPE = re.compile(r"(?<!\\)\|")


def cells(line: str) -> int:
    """Cells in one source row, as GFM splits it: at every pipe not escaped with `\\`."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return len(_PIPE.split(inner))


def problems(text: str) -> list[str]:
    lines = text.splitlines()
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    found: list[str] = []
    header, in_body = 0, False
    for token in tokens:
        if token.type == "thead_open" and token.map is not None:
            header = cells(lines[token.map[0]])
        elif token.type in ("tbody_open", "tbody_close"):
            in_body = token.type == "tbody_open"
        elif token.type == "tr_open" and in_body and token.map is not None:
            row = lines[token.map[0]]
            if cells(row) != header:
                found.append(f"line {token.map[0] + 1}: {cells(row)} cells, header has {header}")
        elif token.type == "paragraph_open" and token.map is not None:
            found += _stray_rows(token, lines)
    return found


def _stray_rows(paragraph: Token, lines: list[str]) -> list[str]:
    """A paragraph whose lines start and end with `|`: table rows cut off from their header."""
    assert paragraph.map is not None
    start, end = paragraph.map
    return [
        f"line {n + 1}: a table row outside a table (a blank line splits the table?)"
        for n in range(start, end)
        if lines[n].strip().startswith("|") and lines[n].strip().endswith("|")
    ]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_row_has_the_headers_cells(path: Path) -> None:
    assert problems(path.read_text(encoding="utf-8")) == []


def test_the_check_finds_a_split_table_and_an_unescaped_pipe() -> None:
    broken = (
        "| route | what |\n| --- | --- |\n| `GET /a` | `bucket=minute|hour` |\n"
        "| `GET /b` | fine |\n\n| `GET /c` | cut off |\n"
    )
    assert problems(broken) == [
        "line 3: 3 cells, header has 2",
        "line 6: a table row outside a table (a blank line splits the table?)",
    ]
    fixed = "| route | what |\n| --- | --- |\n| `GET /a` | `bucket=minute\\|hour` |\n"
    assert problems(fixed) == []
