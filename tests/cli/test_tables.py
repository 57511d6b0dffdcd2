"""`print_table`: which columns a width keeps, and that kept values are never cut."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from opsgate.cli.tables import Column, print_table

ID = "0123456789abcdef0123456789abcdef"
COLUMNS = (
    Column("started (UTC)", 1, wrap=True),
    Column("id"),
    Column("model", 1, wrap=True),
    Column("latency ms", 2, justify="right"),
    Column("deployment", 3, wrap=True),
)
ROW = ["2025-07-01 12:00:00", ID, "chat-default", "1,234", "chat-default/simulator/sim-1"]


def render(width: int, rows: list[list[str | Text]] | None = None) -> list[str]:
    buf = io.StringIO()
    print_table(Console(file=buf, width=width), COLUMNS, rows or [list(ROW)])
    return buf.getvalue().splitlines()


def test_everything_fits_when_wide() -> None:
    lines = render(200)
    assert all(len(line) <= 200 for line in lines)
    assert any(ROW[0] in line and ID in line and ROW[4] in line for line in lines)
    assert not any("hidden" in line for line in lines)


def test_a_wrappable_column_folds_before_anything_is_hidden() -> None:
    natural = sum(max(len(c.header), len(v)) for c, v in zip(COLUMNS, ROW, strict=True))
    lines = render(natural + 3 * len(ROW) + 1 - 1)  # one column short of everything on a line
    assert not any("hidden" in line for line in lines)
    assert sum(ID in line for line in lines) == 1
    assert not any(ROW[4] in line for line in lines), "the deployment folds"


def test_the_highest_rank_goes_first_and_is_named() -> None:
    # Narrowest: dates at the space (10), model whole (12), deployment folded at 24 words.
    narrowest = 10 + len(ID) + 12 + len("latency ms") + 24 + 3 * len(ROW) + 1
    assert not any("hidden" in line for line in render(narrowest))
    lines = render(narrowest - 1)
    assert lines[-1].startswith(f"hidden at {narrowest - 1} columns: deployment (")
    assert any(ROW[0] in line and ID in line and ROW[3] in line for line in lines)


def test_wrappable_columns_break_at_spaces_and_ids_stay_whole() -> None:
    lines = render(70)
    assert all(len(line) <= 70 for line in lines)
    assert sum(ID in line for line in lines) == 1
    assert any("2025-07-01" in line and "12:00:00" not in line for line in lines)
    assert any("12:00:00" in line for line in lines)
    assert "latency ms, deployment" in " ".join(lines)


def test_too_narrow_for_an_id_prints_it_whole_anyway() -> None:
    lines = render(20)
    assert sum(ID in line for line in lines) == 1
    assert "hidden at 20 columns" in " ".join(" ".join(lines).split())


def test_cells_are_text_not_markup() -> None:
    lines = render(200, [["[red]x[/]", ID, "[bold]m", Text("1", style="red"), "d"]])
    assert any("[red]x[/]" in line and "[bold]m" in line for line in lines)
