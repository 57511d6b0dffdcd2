"""Tables that fit the terminal: ids are never cut, the least important columns go first.

Rich shrinks every column of a table that is too wide, cutting ids (`key_3…`) or folding them
over several lines. Here each column says how much it matters; the columns that do not fit are
hidden (and named below the table), wrappable columns break at spaces, and everything else keeps
its whole value on one line. `--json` still prints everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

Cell = str | Text
"""A plain string (never read as markup: ids and names come from users) or styled Text."""

_WRAP_MIN = 8
"""A wrappable column is never narrower than this (or its value), nor than its longest word..."""
_WRAP_MAX = 24
"""...unless that word is longer than this: then the word folds."""


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    rank: int = 0
    """0: always shown; when the table is too wide the highest rank is hidden first."""
    wrap: bool = False
    """May break over several lines (at spaces); otherwise the value stays whole on one line."""
    justify: JustifyMethod = "left"


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _widths(column: Column, cells: list[Text]) -> tuple[int, int]:
    """(narrowest, natural) width of a column's content, header included."""
    lines = [column.header, *(line for c in cells for line in c.plain.splitlines() or [""])]
    natural = max(Text(line).cell_len for line in lines)
    if not column.wrap:
        return natural, natural
    longest_word = max((Text(w).cell_len for line in lines for w in line.split()), default=1)
    return min(natural, max(_WRAP_MIN, min(longest_word, _WRAP_MAX))), natural


def _frame(count: int) -> int:
    """Borders and padding of a rich table with `count` columns (box edges, one space a side)."""
    return 3 * count + 1


def print_table(
    console: Console,
    columns: Sequence[Column],
    rows: Iterable[Sequence[Cell]],
    *,
    title: str | None = None,
    show_header: bool = True,
) -> None:
    """Print `rows` as wide as the console allows, hiding the highest-ranked columns that do not
    fit and saying which. Columns of rank 0 are always shown, whole, even if the lines wrap."""
    body = [[_text(c) for c in row] for row in rows]
    sizes = [_widths(col, [row[i] for row in body]) for i, col in enumerate(columns)]
    shown = list(range(len(columns)))
    width = console.width

    def need() -> int:
        return sum(sizes[i][0] for i in shown) + _frame(len(shown))

    while need() > width:
        droppable = [i for i in shown if columns[i].rank > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].rank, i)))
    spare = max(0, width - need())
    table = Table(title=title, show_header=show_header)
    for i in sorted(shown, key=lambda i: columns[i].rank):  # the important ones widen first
        narrowest, natural = sizes[i]
        grow = min(spare, natural - narrowest)
        spare -= grow
        sizes[i] = (narrowest + grow, natural)
    for i in shown:
        col = columns[i]
        table.add_column(
            col.header,
            justify=col.justify,
            width=sizes[i][0],
            no_wrap=not col.wrap,
            overflow="fold",
        )
    for row in body:
        table.add_row(*(row[i] for i in shown))
    _print_whole(console, table, need())
    hidden = [columns[i].header for i in range(len(columns)) if i not in shown]
    if hidden:
        console.print(
            f"hidden at {width} columns: {', '.join(hidden)} (a wider terminal or --json shows "
            "them)",
            style="dim",
            highlight=False,
            markup=False,
        )


def _print_whole(console: Console, table: Table, needed: int) -> None:
    """Print at the console's width, or wider when even the rank-0 columns need more (the
    terminal then wraps the lines, but no id is cut)."""
    if needed <= console.width:
        console.print(table)
        return
    saved = console.width
    console.width = needed
    try:
        console.print(table, crop=False)
    finally:
        console.width = saved
