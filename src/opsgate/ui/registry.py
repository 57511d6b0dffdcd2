"""The page registry: a dashboard page is one module with a `PAGE` and one template.

    PAGE = Page("traces", "Traces", "/traces", any_of=(Permission.TRACES_READ,),
                routes=(Route("/traces", view(P.TRACES_READ)(traces)),))

The registry builds the navigation (only pages the principal may open) and the routes.
Built-in pages register the same way a later one does (`pages/__init__.py` lists them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.routing import BaseRoute

from opsgate.access.permissions import Permission, allowed
from opsgate.access.principal import Principal


@dataclass(frozen=True, slots=True)
class Page:
    name: str
    title: str
    """The navigation label."""
    path: str
    """Where the navigation links, under the dashboard's root (`/traces`)."""
    any_of: tuple[Permission, ...]
    """The page is listed for a principal with any of these (its routes check their own)."""
    routes: tuple[BaseRoute, ...]
    order: int = 100
    """Position in the navigation, lowest first."""

    def shown_to(self, principal: Principal) -> bool:
        return any(allowed(principal, need) for need in self.any_of)

    def holds(self, path: str) -> bool:
        """Whether a path under the root belongs to this page (for the active nav entry)."""
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")


class PageRegistry:
    def __init__(self, pages: Iterable[Page] = ()) -> None:
        self._pages: list[Page] = []
        for page in pages:
            self.add(page)

    def add(self, page: Page) -> None:
        for other in self._pages:
            if other.name == page.name or other.path == page.path:
                raise ValueError(f"dashboard page {page.name!r} clashes with {other.name!r}")
        self._pages.append(page)
        self._pages.sort(key=lambda p: (p.order, p.name))

    @property
    def pages(self) -> list[Page]:
        return list(self._pages)

    def visible(self, principal: Principal) -> list[Page]:
        return [page for page in self._pages if page.shown_to(principal)]

    def routes(self) -> list[BaseRoute]:
        return [route for page in self._pages for route in page.routes]
