"""The OpenAI-compatible routes. Thin: parse, call the pipeline, serialise. Chat completions,
the hot path, is a plain ASGI app of its own (`api.chat_endpoint`)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsgate.api.chat_endpoint import ChatEndpoint, route_headers
from opsgate.api.parse import parse_embedding
from opsgate.api.responses import JSONResponse, error_response
from opsgate.errors import OpsgateError
from opsgate.gateway import Gateway
from opsgate.pipeline.context import (
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
        return error_response(exc, route_headers(ctx))
    return JSONResponse(result, headers=route_headers(ctx))


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


chat_endpoint = ChatEndpoint()

routes = [
    # Reached only when `HotPath` is not in front (it answers these paths' POSTs first); the
    # routes keep 405 for other methods.
    Route("/v1/chat/completions", chat_endpoint, methods=["POST"]),
    Route("/chat/completions", chat_endpoint, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/models", list_models, methods=["GET"]),
]
