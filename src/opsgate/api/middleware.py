"""A pure-ASGI layer that makes sure every response carries `x-opsgate-trace-id`.

Handlers that build a trace set the header themselves; anything else (404s, admin, probes) gets
a fresh id here, so a client can always quote one when reporting a problem.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsgate.pipeline.context import new_trace_id

_HEADER = b"x-opsgate-trace-id"


class TraceIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers") or []
                if not any(name == _HEADER for name, _ in headers):
                    message["headers"] = [*headers, (_HEADER, new_trace_id().encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)
