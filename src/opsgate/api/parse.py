"""Parse once: the body is read under a size cap (`web.body.read_json`), then only the fields the
gateway acts on are validated. Everything else stays in the request untouched, for the upstream."""

from __future__ import annotations

from typing import Any

from opsgate.chat import ChatRequest, EmbeddingRequest
from opsgate.errors import BadRequestError
from opsgate.prompts.model import MODEL_PREFIX
from opsgate.types import JSONObject

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _bad(param: str, expected: str, value: Any) -> BadRequestError:
    got = type(value).__name__ if value is not None else "null"
    return BadRequestError(
        f"Invalid type for '{param}': expected {expected}, but got {got}.",
        param=param,
        code="invalid_type",
    )


def _model(body: JSONObject) -> str:
    model = body.get("model")
    if model is None:
        raise BadRequestError(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    if not isinstance(model, str) or not model:
        raise _bad("model", "a non-empty string", model)
    return model


def _check_number(body: JSONObject, name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, "a number", value)
    if not low <= value <= high:
        raise BadRequestError(
            f"'{name}' must be between {low:g} and {high:g}; got {value}.",
            param=name,
            code="invalid_value",
        )


MAX_INT = 2**31 - 1
"""The largest count a request may name (what upstream APIs accept as a 32-bit integer)."""


def _check_int(body: JSONObject, name: str, low: int, high: int = MAX_INT) -> None:
    value = body.get(name)
    if value is None:
        return
    allowed = f"an integer from {low:,} to {high:,}"
    if isinstance(value, float):  # 1e30, 100.5: JSON numbers with a point or exponent
        raise BadRequestError(
            f"Invalid type for '{name}': expected {allowed}, but got {value!r} (a number "
            "with a fraction or an exponent).",
            param=name,
            code="invalid_type",
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, allowed, value)
    if not low <= value <= high:
        raise BadRequestError(
            f"'{name}' must be {allowed}; got {value:,}.", param=name, code="invalid_value"
        )


def _messages(body: JSONObject, *, required: bool = True) -> list[JSONObject]:
    """`required=False` for a request naming a prompt: its messages are only extra turns."""
    messages = body.get("messages")
    if messages is None and not required:
        return []
    if messages is None:
        raise BadRequestError(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list):
        raise _bad("messages", "an array", messages)
    if not messages and required:
        raise BadRequestError(
            "'messages' must contain at least one message.", param="messages", code="invalid_value"
        )
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _bad(f"messages[{i}]", "an object", msg)
        role = msg.get("role")
        if role not in _ROLES:
            raise BadRequestError(
                f"Invalid value for 'messages[{i}].role': {role!r}; expected one of "
                f"{', '.join(sorted(_ROLES))}.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"messages[{i}].content", "a string or an array of parts", content)
    return messages


def parse_chat(body: JSONObject) -> ChatRequest:
    model = body.get("model")
    prompted = "prompt" in body or (isinstance(model, str) and model.startswith(MODEL_PREFIX))
    model = "prompt" if prompted and model is None else _model(body)  # prompts/request.py
    messages = _messages(body, required=not prompted)
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", "a boolean", stream)
    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1)
    _check_number(body, "presence_penalty", -2, 2)
    _check_number(body, "frequency_penalty", -2, 2)
    _check_int(body, "n", 1)
    _check_int(body, "max_tokens", 1)
    _check_int(body, "max_completion_tokens", 1)
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise _bad("stop", "a string or an array of strings", stop)
    for name in ("tools", "functions"):
        if body.get(name) is not None and not isinstance(body[name], list):
            raise _bad(name, "an array", body[name])
    for name in ("stream_options", "response_format", "metadata"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise _bad(name, "an object", body[name])
    params = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
    return ChatRequest(model=model, messages=messages, stream=bool(stream), params=params)


def parse_embedding(body: JSONObject) -> EmbeddingRequest:
    model = _model(body)
    value = body.get("input")
    if value is None:
        raise BadRequestError(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    if not isinstance(value, str | list) or (isinstance(value, list) and not value):
        raise _bad("input", "a string or a non-empty array", value)
    params = {k: v for k, v in body.items() if k not in ("model", "input")}
    return EmbeddingRequest(model=model, input=value, params=params)
