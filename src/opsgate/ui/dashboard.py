"""The dashboard as one ASGI app, mounted by the gateway at `/ui`.

It owns what the pages share: the registry, the templates, the session secret fallback and the
logged-out sessions. Its own exception handlers answer HTML (the gateway's answer JSON), and
every response carries a strict Content-Security-Policy: scripts and styles only from
`/ui/static`, so even a template bug could not run a prompt's `<script>`.
"""

from __future__ import annotations

import os

from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsgate._version import __version__
from opsgate.gateway import Gateway
from opsgate.ui import login
from opsgate.ui.pages import builtin_pages
from opsgate.ui.principals import master_key, session_principal
from opsgate.ui.registry import PageRegistry
from opsgate.ui.render import STATIC, Renderer, make_environment
from opsgate.ui.sessions import COOKIE, EndedSessions, SessionSigner, session_secret
from opsgate.ui.visit import DASHBOARD, Visit

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
_STATIC_CACHE = b"public, max-age=86400"
"""Asset links carry the package version (`?v=`), so an upgrade fetches them anew."""


class Dashboard:
    def __init__(self, registry: PageRegistry | None = None) -> None:
        self.registry = registry or PageRegistry(builtin_pages())
        self.renderer = Renderer(make_environment(), __version__)
        self.ended = EndedSessions()
        self._fallback_secret = os.urandom(32)
        router = Router(
            [
                *login.routes,
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
                *self.registry.routes(),
            ]
        )
        handlers = {404: self._not_found, 405: self._not_allowed, HTTPException: self._http}
        self._app: ASGIApp = ExceptionMiddleware(router, handlers=handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[DASHBOARD] = self
        static = scope["path"].startswith(f"{scope.get('root_path', '')}/static/")

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", _STATIC_CACHE if static else b"no-store"))
                message["headers"] = [*headers, *_HEADERS]
            await send(message)

        await self._app(scope, receive, secured if scope["type"] == "http" else send)

    def signer(self, gateway: Gateway) -> SessionSigner:
        return SessionSigner(session_secret(master_key(gateway), self._fallback_secret))

    async def open_visit(self, request: Request) -> Visit | None:
        """The visit of a logged-in principal whose key still works, or None."""
        gateway: Gateway = request.app.state.gateway
        signer = self.signer(gateway)
        session = signer.read(request.cookies.get(COOKIE))
        if session is None or session in self.ended:
            return None
        principal = await session_principal(gateway, session.key_id)
        if principal is None:
            return None
        return Visit(request, self, gateway, principal, session, signer.csrf_token(session))

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return self.renderer.error(request, 404, f"There is no page at {request.url.path}.")

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        return self.renderer.error(
            request, 405, f"{request.method} is not allowed on {request.url.path}."
        )

    async def _http(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return self.renderer.error(request, status, str(getattr(exc, "detail", "")))


def create_ui(registry: PageRegistry | None = None) -> Dashboard:
    """The dashboard app for `Mount("/ui", create_ui())`; `registry` replaces the built-in
    pages (tests, or an embedding application with pages of its own)."""
    return Dashboard(registry)
