"""The bare Python proxy: a raw ASGI app that forwards the request body to the upstream
with one pooled aiohttp session and relays the answer — no routing, no parsing, no middleware.

The gap between this and direct is what uvicorn + aiohttp cost per request; the gap between
this and the gateway is the gateway's own work. `python -m bench.bareproxy --port N --upstream URL`.
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp

from bench.upstream import Message, Receive, Scope, Send


class ForwardingApp:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        assert self.session is not None
        method = scope["method"]
        headers = {"content-type": "application/json"}
        url = self.upstream + scope["path"]
        async with self.session.request(method, url, data=body, headers=headers) as resp:
            content_type = resp.headers.get("content-type", "application/json")
            if not content_type.startswith("text/event-stream"):
                payload = await resp.read()
                await send(_head(resp.status, content_type, len(payload)))
                await send({"type": "http.response.body", "body": payload})
                return
            await send(_head(resp.status, content_type, None))
            async for chunk in resp.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0)
                self.session = aiohttp.ClientSession(connector=connector, trust_env=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _head(status: int, content_type: str, length: int | None) -> Message:
    headers: list[tuple[bytes, bytes]] = [(b"content-type", content_type.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    message: dict[str, Any] = {"type": "http.response.start", "status": status}
    message["headers"] = headers
    return message


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000")
    args = parser.parse_args()
    uvicorn.run(
        ForwardingApp(args.upstream),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
