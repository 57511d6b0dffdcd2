"""Reading a JSON request body once, under a size cap, for any route that takes one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from opsgate.errors import BadRequestError, PayloadTooLargeError, UnprocessableError
from opsgate.types import JSONObject

M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request, limit: int) -> JSONObject:
    """The body as a JSON object: 413 over `limit` bytes, 400 when empty, not JSON or not an
    object."""
    return await read_json_stream(request.stream(), request.headers.get("content-length"), limit)


async def read_json_stream(
    pieces: AsyncIterator[bytes], declared: str | None, limit: int
) -> JSONObject:
    """`read_json` for a body given as its pieces and its declared `content-length` (the
    hot path reads the ASGI messages itself, without a Starlette `Request`)."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for piece in pieces:
        body += piece
        if len(body) > limit:
            raise _too_large(limit)
    if not body:
        raise BadRequestError(
            "The request body is empty; expected a JSON object.", code="invalid_json"
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(
            f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise BadRequestError("The request body must be a JSON object.", code="invalid_json")
    return data


def validated(model: type[M], data: JSONObject) -> M:
    """`data` as `model`; 422 `invalid_body` naming the first field that fails and why."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = ".".join(str(p) for p in errors[0]["loc"]) or None
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        raise UnprocessableError(detail, code="invalid_body", param=first) from None


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body is larger than the {limit} bytes allowed.")
