"""The built-in dashboard pages. Adding one: a module here with a `PAGE` (see
`opsgate.ui.registry`), a template in `ui/templates/`, and its name in `BUILTIN`."""

from __future__ import annotations

import importlib

from opsgate.ui.registry import Page

BUILTIN: tuple[str, ...] = (
    "overview",
    "traces",
    "review",
    "datasets",
    "evals",
    "keys",
    "prompts",
    "experiments",
    "tuning",
    "drift",
    "knowledge",
    "models",
    "security",
)


def builtin_pages() -> list[Page]:
    pages: list[Page] = []
    for name in BUILTIN:
        module = importlib.import_module(f"{__name__}.{name}")
        pages.append(module.PAGE)
    return pages
