"""Comparing two versions: a unified diff (CLI, API) and side-by-side rows (the dashboard), both
over the versions' YAML files (prompts/files.py), so what is compared is what a reviewer reads
in git."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from opsgate.prompts.files import to_file
from opsgate.prompts.model import PromptVersion

Tag = Literal["equal", "replace", "delete", "insert"]


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One line pair; a side is None where the other version has no line there."""

    tag: Tag
    left_no: int | None
    left: str | None
    right_no: int | None
    right: str | None


def _lines(version: PromptVersion) -> list[str]:
    return to_file(version.name, version.spec).splitlines()


def unified(old: PromptVersion, new: PromptVersion, context: int = 3) -> str:
    lines = difflib.unified_diff(
        _lines(old),
        _lines(new),
        fromfile=f"{old.name}@{old.version}",
        tofile=f"{new.name}@{new.version}",
        n=context,
        lineterm="",
    )
    return "\n".join(lines)


def side_by_side(old: PromptVersion, new: PromptVersion) -> list[DiffRow]:
    left, right = _lines(old), _lines(new)
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [
                DiffRow("equal", i + 1, left[i], j + 1, right[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
            continue
        width = max(i2 - i1, j2 - j1)
        for k in range(width):
            i, j = i1 + k, j1 + k
            has_left, has_right = i < i2, j < j2
            kind: Tag = (
                "replace" if has_left and has_right else ("delete" if has_left else "insert")
            )
            rows.append(
                DiffRow(
                    kind,
                    i + 1 if has_left else None,
                    left[i] if has_left else None,
                    j + 1 if has_right else None,
                    right[j] if has_right else None,
                )
            )
    return rows


def changed_fields(old: PromptVersion, new: PromptVersion) -> list[str]:
    """Top-level fields whose value differs (`messages`, `model`, `params`, ...)."""
    a = old.spec.model_dump(mode="json")
    b = new.spec.model_dump(mode="json")
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
