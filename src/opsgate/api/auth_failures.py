"""A pure-ASGI layer that counts 401 answers per client address for the credential-stuffing
alert (alerts/security.py).

It sits outside every other layer, so it sees the 401s of the OpenAI routes, the admin API
(answered by the access middleware) and the dashboard alike. Its cost on a request is a
wrapped `send` and one status comparison; a 401 adds a dictionary look-up and a deque append.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsgate.gateway import Gateway


def count_auth_failure(scope: Scope, gateway: Gateway) -> None:
    """One 401 answered to this request's client address (also used by the chat hot path)."""
    client = scope.get("client")
    gateway.compliance.security.auth_failed(client[0] if client else "unknown")


class AuthFailureMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                gateway: Gateway | None = getattr(scope["app"].state, "gateway", None)
                if gateway is not None:
                    count_auth_failure(scope, gateway)
            await send(message)

        await self.app(scope, receive, watch)
