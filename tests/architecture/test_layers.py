"""The layer contract of DESIGN.md (pyproject `[tool.importlinter]`) holds on the tree, and it
bites: a copy of the package with one deliberate upward import, or one import cycle, fails it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "opsgate",
        src / "opsgate",
        ignore=shutil.ignore_patterns("__pycache__", "static", "templates", "*.npz"),
    )
    return src


def _append(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}\n")


def test_the_tree_keeps_the_layers() -> None:
    result = _lint(ROOT / "src", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    _append(src / "opsgate" / "store" / "db.py", "import opsgate.pipeline.context  # upward")
    result = _lint(src, tmp_path)
    assert result.returncode != 0
    assert "opsgate.store is not allowed to import opsgate.pipeline" in result.stdout


def test_a_function_local_import_still_counts(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    _append(
        src / "opsgate" / "config" / "loader.py",
        "def _dodge() -> None:\n    from opsgate.gateway import Gateway  # noqa: F401",
    )
    result = _lint(src, tmp_path)
    assert result.returncode != 0
    assert "opsgate.config is not allowed to import opsgate.gateway" in result.stdout


def test_a_cycle_between_siblings_breaks_the_contract(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    # budgets already imports limits (a scope type); the reverse closes a cycle in access/.
    _append(
        src / "opsgate" / "access" / "limits" / "model.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from opsgate.access.budgets.model import Period  # noqa: F401",
    )
    result = _lint(src, tmp_path)
    assert result.returncode != 0
    assert "No cycles are allowed in opsgate.access" in result.stdout


@pytest.mark.parametrize("name", ["inspect", "secrets", "http"])
def test_no_module_shadows_the_standard_library(name: str) -> None:
    shadows = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "src" / "opsgate").rglob(f"{name}.py")
    )
    assert shadows == []
