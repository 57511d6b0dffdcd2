"""The web dashboard, served by the gateway at `/ui`: server-rendered pages (Jinja2), htmx for
light interactivity and uPlot for charts, both vendored under `static/` (no build step, no
network at run time). See docs/dashboard.md."""

from __future__ import annotations

from opsgate.ui.dashboard import Dashboard, create_ui
from opsgate.ui.registry import Page, PageRegistry
from opsgate.ui.visit import Visit, view

__all__ = ["Dashboard", "Page", "PageRegistry", "Visit", "create_ui", "view"]
