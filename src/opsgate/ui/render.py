"""Server-side rendering: one Jinja2 environment (autoescaped, strict), the number formats every
page shares, and the HTML error page.

Every value a template prints is escaped (prompts, metadata and ids come from callers), and the
strict undefined turns a typo in a template into a test failure rather than a blank cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from opsgate.accounting.cost import micros_to_usd

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
NONE = "\u2013"
"""What a cell shows for a missing value (an en dash)."""


CENT = Decimal("0.01")
MICRO = Decimal("0.000001")


def usd(micros: int | float | None) -> str:
    """Money for people, exact to the micro-dollar costs are counted in: `$12.35`,
    `$12.345678`, `$0.000030` (under a cent: six places, so a cheap request never reads
    `$0.0000`). Every cost the dashboard prints goes through here; an average (a float) is
    rounded to the micro-dollar."""
    if micros is None:
        return NONE
    value = micros_to_usd(round(micros))
    if value == 0:
        return "$0.00"
    if abs(value) < CENT:
        return f"${value.quantize(MICRO)}"
    exact = value.quantize(MICRO).normalize()
    return f"${exact.quantize(CENT) if exact == exact.quantize(CENT) else exact:,}"


def plural(count: int, word: str) -> str:
    """`1 span`, `2 spans`, `0 spans`."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return NONE
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    if value >= 100:
        return f"{value:,.0f} ms"
    return f"{value:,.1f} ms"


def num(value: float | None) -> str:
    if value is None:
        return NONE
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def pct(rate: float | None) -> str:
    return NONE if rate is None else f"{rate * 100:.1f}%"


def when(epoch: float | None) -> str:
    if epoch is None:
        return NONE
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when_ms(epoch: float | None) -> str:
    """To the millisecond, without the zone (the column says UTC): traces come in bursts."""
    if epoch is None:
        return NONE
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def make_environment(directory: Path = TEMPLATES) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(usd=usd, ms=ms, num=num, pct=pct, when=when, when_ms=when_ms, plural=plural)
    return env


class Renderer:
    """Templates to responses; `static_url` versions asset links so browsers cache them."""

    def __init__(self, env: jinja2.Environment, version: str) -> None:
        self.env = env
        self.version = version

    def base(self, request: Request) -> dict[str, Any]:
        root = request.scope.get("root_path", "")
        return {
            "root": root,
            "static": lambda path: f"{root}/static/{path}?v={self.version}",
        }

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render({**self.base(request), **context})
        return HTMLResponse(html, status_code=status, headers=dict(headers or {}))

    def error(
        self, request: Request, status: int, message: str, *, title: str | None = None
    ) -> HTMLResponse:
        """The HTML error page (404, 403, 400, ...): the dashboard never answers JSON."""
        return self.render(
            request,
            "error.html",
            {"status": status, "title": title or _TITLES.get(status, "Error"), "message": message},
            status=status,
        )


_TITLES = {
    400: "Bad request",
    401: "Not logged in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Too large",
    422: "Invalid input",
    500: "Internal error",
    503: "Unavailable",
}
