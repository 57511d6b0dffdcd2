"""`POST /v1/chat/completions` as a plain ASGI app: the gateway's hot path.

Every chat request used to pass Starlette's router, its exception middleware, a `Request`
object and four middleware layers meant for the admin API, which cost about a quarter of the
event loop's time per request under load (docs/benchmarks.md). `HotPath` hands the chat
paths to `ChatEndpoint` before all that; the answers are byte for byte what the routed
handler gave: OpenAI-shaped errors with the trace id, a backend outage as a 503, a stream as
Starlette's `StreamingResponse` (which also stops the upstream when the client goes away). A
401 is counted for the credential-stuffing alert here, as `AuthFailureMiddleware` counts the
other routes'.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from opsgate.api.auth_failures import count_auth_failure
from opsgate.api.parse import parse_chat
from opsgate.api.responses import SSE_DONE, sse_event
from opsgate.chat import ChatChunk, ChatResponse
from opsgate.errors import OpsgateError
from opsgate.gateway import Gateway
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext, request_timeout
from opsgate.web.body import read_json_stream
from opsgate.web.outage import OUTAGES, unavailable

log = logging.getLogger("opsgate.api")

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_JSON = (b"content-type", b"application/json")


class HotPath:
    """Sends `POST` to the chat paths straight to `endpoint`; everything else to `app`."""

    def __init__(self, app: ASGIApp, endpoint: ASGIApp | None = None) -> None:
        self.app = app
        self.endpoint = endpoint or ChatEndpoint()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and route_path(scope) in CHAT_PATHS
        ):
            await self.endpoint(scope, receive, send)
            return
        await self.app(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The path below the app's mount point (`root_path`), as Starlette's router matches it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class ChatEndpoint:
    """Parse, call the chat pipeline, serialise; a backend outage is a 503, never a 500."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._handle(scope, receive, send)
        except OUTAGES as exc:
            log.warning("POST %s: backend unavailable: %s", scope["path"], exc)
            await send_error(send, unavailable(exc), {})
        except ClientDisconnect:
            return  # gone before its request was read: nobody to answer, nothing accepted

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway: Gateway = scope["app"].state.gateway
        runtime = gateway.runtime
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        ctx = RequestContext(headers=headers)
        record = runtime.chat_record
        try:
            ctx.route.timeout = request_timeout(headers)
            limit = runtime.config.server.max_body_bytes
            body = await read_json_stream(_pieces(receive), headers.get("content-length"), limit)
        except OpsgateError as exc:
            record.rejected(ctx, exc)
            await _refuse(scope, send, gateway, exc, {"x-opsgate-trace-id": ctx.trace_id})
            return
        try:
            call = ChatCall(ctx, parse_chat(body))
        except OpsgateError as exc:
            record.rejected(ctx, exc, body.get("model"))
            await _refuse(scope, send, gateway, exc, {"x-opsgate-trace-id": ctx.trace_id})
            return
        result: ChatResult | None = None
        try:
            result = await runtime.chat(call)
            if isinstance(result, ChatResponse):
                await send_json(send, result.body, 200, route_headers(ctx))
                return
            first = await anext(result)
        except OpsgateError as exc:
            if result is not None and not isinstance(result, ChatResponse):
                await close(result)
            await _refuse(scope, send, gateway, exc, route_headers(ctx))
            return
        except StopAsyncIteration:
            empty = OpsgateError("the upstream stream ended without any chunk")
            await _refuse(scope, send, gateway, empty, route_headers(ctx))
            return
        stream_headers = {
            **route_headers(ctx),
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
        }
        response = StreamingResponse(
            sse(first, result), media_type="text/event-stream", headers=stream_headers
        )
        await response(scope, receive, send)


async def _refuse(
    scope: Scope, send: Send, gateway: Gateway, exc: OpsgateError, headers: dict[str, str]
) -> None:
    """An error answer; a 401 is counted against the client's address (alerts/security.py)."""
    if exc.status == 401:
        count_auth_failure(scope, gateway)
    await send_error(send, exc, headers)


async def _pieces(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's pieces, as Starlette's `Request.stream` yields them."""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body: bytes = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def route_headers(ctx: RequestContext) -> dict[str, str]:
    """What every routed answer says about its route: trace id, attempts, deployment, cost."""
    headers = {**ctx.response_headers, "x-opsgate-trace-id": ctx.trace_id}
    if ctx.route.attempts:
        headers["x-opsgate-attempts"] = str(len(ctx.route.attempts))
    if ctx.route.deployment is not None:
        headers["x-opsgate-deployment"] = ctx.route.deployment.id
    if ctx.cost_micros:  # settled before a non-streamed answer; eval runs read it
        headers["x-opsgate-cost-usd"] = f"{ctx.cost_micros / 1e6:.6f}"
    return headers


async def send_json(send: Send, content: Any, status: int, headers: dict[str, str]) -> None:
    """One JSON answer in two ASGI messages, as `api.responses.JSONResponse` renders it."""
    body = orjson.dumps(content)
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append(_JSON)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, exc: OpsgateError, headers: dict[str, str]) -> None:
    await send_json(send, exc.to_body(), exc.status, {**exc.headers, **headers})


async def sse(first: ChatChunk, rest: AsyncIterator[ChatChunk]) -> AsyncIterator[bytes]:
    """Frame chunks as SSE; a failure after the first chunk ends the stream with an error event."""
    try:
        yield sse_event(first.body)
        async for chunk in rest:
            yield sse_event(chunk.body)
        yield SSE_DONE
    except OpsgateError as exc:
        yield sse_event(exc.to_body())
    except Exception:
        log.exception("stream failed")
        yield sse_event(OpsgateError("The gateway hit an internal error mid-stream.").to_body())
    finally:
        await close(rest)


async def close(stream: object) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
