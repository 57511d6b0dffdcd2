"""Labelled JSONL files for `opsgate eval hallucination`: one object a line with string fields
`knowledge`, `question`, `answer` and `label` 0/1 (or false/true; 1 = hallucinated)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FIELDS = ("knowledge", "question", "answer")


class LabelledFileError(ValueError):
    """The file cannot be read as labelled rows; the message names the line and the field."""


@dataclass(frozen=True, slots=True)
class LabelledAnswer:
    knowledge: str
    question: str
    answer: str
    label: int


def load_labelled(path: Path) -> list[LabelledAnswer]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledFileError(f"cannot read {path}: {exc}") from None
    rows = [_row(f"{path}:{n}", line) for n, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise LabelledFileError(f"{path}: no rows")
    return rows


def _row(where: str, line: str) -> LabelledAnswer:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LabelledFileError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise LabelledFileError(f"{where}: expected an object, got {type(row).__name__}")
    for name in FIELDS:
        if not isinstance(row.get(name), str):
            raise LabelledFileError(f"{where}: needs a string field `{name}`")
    label = row.get("label")
    if label not in (0, 1) or isinstance(label, float):
        raise LabelledFileError(f"{where}: `label` must be 0 or 1 (or false/true), got {label!r}")
    return LabelledAnswer(row["knowledge"], row["question"], row["answer"], int(label))
