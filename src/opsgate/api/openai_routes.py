"""The OpenAI-compatible routes. Thin: parse, call the pipeline, serialise."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from opsgate.api.parse import parse_chat, parse_embedding
from opsgate.api.responses import SSE_DONE, JSONResponse, error_response, sse_event
from opsgate.chat import ChatChunk, ChatResponse
from opsgate.errors import OpsgateError
from opsgate.gateway import Gateway
from opsgate.pipeline.context import (
    ChatCall,
    ChatResult,
    EmbeddingCall,
    RequestContext,
    request_timeout,
)
from opsgate.pipeline.stages.record import Record
from opsgate.web.body import read_json

log = logging.getLogger("opsgate.api")


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _headers(request: Request) -> dict[str, str]:
    """The request headers as a plain dict, decoded once: stages look several up by name, and
    ASGI already gives the names in lower case."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}


def _route_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {**ctx.response_headers, "x-opsgate-trace-id": ctx.trace_id}
    if ctx.route.attempts:
        headers["x-opsgate-attempts"] = str(len(ctx.route.attempts))
    if ctx.route.deployment is not None:
        headers["x-opsgate-deployment"] = ctx.route.deployment.id
    if ctx.cost_micros:  # settled before a non-streamed answer; eval runs read it
        headers["x-opsgate-cost-usd"] = f"{ctx.cost_micros / 1e6:.6f}"
    return headers


async def _read(request: Request, ctx: RequestContext, record: Record, limit: int) -> Any:
    """The decoded body, or an error response (traced) when it cannot be used."""
    body: Any = None
    try:
        ctx.route.timeout = request_timeout(request.headers)
        body = await read_json(request, limit)
    except OpsgateError as exc:
        record.rejected(ctx, exc)
        return error_response(exc, {"x-opsgate-trace-id": ctx.trace_id})
    return body


async def chat_completions(request: Request) -> Response:
    runtime = _gateway(request).runtime
    ctx = RequestContext(headers=_headers(request))
    body = await _read(request, ctx, runtime.chat_record, runtime.config.server.max_body_bytes)
    if isinstance(body, Response):
        return body
    try:
        call = ChatCall(ctx, parse_chat(body))
    except OpsgateError as exc:
        runtime.chat_record.rejected(ctx, exc, body.get("model"))
        return error_response(exc, {"x-opsgate-trace-id": ctx.trace_id})
    result: ChatResult | None = None
    try:
        result = await runtime.chat(call)
        if isinstance(result, ChatResponse):
            return JSONResponse(result.body, headers=_route_headers(ctx))
        first = await anext(result)
    except OpsgateError as exc:
        if result is not None and not isinstance(result, ChatResponse):
            await _close(result)
        return error_response(exc, _route_headers(ctx))
    except StopAsyncIteration:
        empty = OpsgateError("the upstream stream ended without any chunk")
        return error_response(empty, _route_headers(ctx))
    headers = {**_route_headers(ctx), "cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(_sse(first, result), media_type="text/event-stream", headers=headers)


async def _sse(first: ChatChunk, rest: AsyncIterator[ChatChunk]) -> AsyncIterator[bytes]:
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
        await _close(rest)


async def _close(stream: object) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


async def embeddings(request: Request) -> Response:
    runtime = _gateway(request).runtime
    ctx = RequestContext(headers=_headers(request))
    record = runtime.embedding_record
    body = await _read(request, ctx, record, runtime.config.server.max_body_bytes)
    if isinstance(body, Response):
        return body
    try:
        call = EmbeddingCall(ctx, parse_embedding(body))
    except OpsgateError as exc:
        record.rejected(ctx, exc, body.get("model"))
        return error_response(exc, {"x-opsgate-trace-id": ctx.trace_id})
    try:
        result = await runtime.embeddings(call)
    except OpsgateError as exc:
        return error_response(exc, _route_headers(ctx))
    return JSONResponse(result, headers=_route_headers(ctx))


async def list_models(request: Request) -> Response:
    runtime = _gateway(request).runtime
    ctx = RequestContext(headers=_headers(request))
    try:
        principal = await runtime.auth.resolve(ctx)
    except OpsgateError as exc:
        return error_response(exc, {"x-opsgate-trace-id": ctx.trace_id})
    data = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "opsgate",
            "kind": group.kind,
            "description": group.description,
        }
        for name, group in runtime.router.groups.items()
        if principal.may_use(name)
    ]
    return JSONResponse(
        {"object": "list", "data": data}, headers={"x-opsgate-trace-id": ctx.trace_id}
    )


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/models", list_models, methods=["GET"]),
]
