"""Authenticates every `/admin/` request once, before routing: a pure-ASGI layer.

The caller (a `Principal`) is left in the ASGI scope under `web.auth.PRINCIPAL`, where
`authorise` and the audit layer read it synchronously. A missing or bad key is answered here
(401), so no admin handler runs for it. Without a master key, callers on this machine are
trusted (the open laptop); elsewhere they need a key.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from opsgate.api.responses import error_response
from opsgate.errors import OpsgateError
from opsgate.gateway import Gateway
from opsgate.web.auth import LOOPBACK, PRINCIPAL


class AccessMiddleware:
    """Authenticates every `/admin/` request once; handlers read the principal synchronously."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/admin/"):
            await self.app(scope, receive, send)
            return
        gateway: Gateway = scope["app"].state.gateway
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        trusted = gateway.master_key is None and bool(client and client[0] in LOOPBACK)
        try:
            scope[PRINCIPAL] = await gateway.authenticate(headers, trusted=trusted)
        except OpsgateError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)
