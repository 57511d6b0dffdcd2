"""Turning results and errors into HTTP: OpenAI-shaped JSON errors and SSE framing."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from opsgate.errors import OpsgateError
from opsgate.web.outage import unavailable

log = logging.getLogger("opsgate.api")

SSE_DONE = b"data: [DONE]\n\n"


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: OpsgateError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        exc.to_body(), status_code=exc.status, headers={**exc.headers, **(headers or {})}
    )


def sse_event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def handle_opsgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OpsgateError)
    return error_response(exc)


async def handle_outage(request: Request, exc: Exception) -> Response:
    """A backend that cannot answer (`web.outage.OUTAGES`): 503, logged without a traceback."""
    log.warning("%s %s: backend unavailable: %s", request.method, request.url.path, exc)
    return error_response(unavailable(exc))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """The last resort: log the traceback for operators, show the client no internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    err = OpsgateError("The gateway hit an internal error; it has been logged.")
    return error_response(err)
