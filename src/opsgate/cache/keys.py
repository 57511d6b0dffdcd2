"""Cache keys: a hash of the normalised request.

Two requests share a key when an upstream would give them the same answer: same model, messages,
tools and output-changing parameters. Fields that only label or transport a request (`user`,
`metadata`, `stream`, ...) are left out, so a streamed and a plain request share an entry. Any
field not listed here counts, so a new OpenAI parameter can only split entries, never merge
answers that differ.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from opsgate.access.principal import Principal
from opsgate.chat import ChatRequest
from opsgate.config.cache import Namespacing
from opsgate.types import JSONObject

IGNORED_PARAMS = frozenset(
    {
        "user",
        "metadata",
        "stream",
        "stream_options",
        "cache",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
    }
)
"""Body fields that do not change the answer."""


def canonical(value: Any) -> Any:
    """`0` and `0.0` alike and nulls dropped from objects, so equal requests hash equal."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _message(msg: JSONObject) -> JSONObject:
    out: JSONObject = canonical(msg)
    content = out.get("content")
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        out["content"] = "".join(p["text"] for p in content)
    return out


def output_params(req: ChatRequest) -> JSONObject:
    return {
        k: canonical(v) for k, v in req.params.items() if k not in IGNORED_PARAMS and v is not None
    }


def _digest(payload: Any) -> str:
    raw = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def exact_key(namespace: str, req: ChatRequest) -> str:
    """The exact cache key: namespace, model, messages and output-changing parameters."""
    messages = [_message(m) for m in req.messages]
    return _digest([namespace, req.model, messages, output_params(req)])


def split_last_user(req: ChatRequest) -> tuple[str | None, list[JSONObject]]:
    """(the final user turn's text, every other message); None when the request does not end
    with a plain-text user turn (tool results, images), which the semantic cache skips."""
    if not req.messages:
        return None, []
    last = _message(req.messages[-1])
    text = last.get("content")
    if last.get("role") != "user" or not isinstance(text, str) or not text.strip():
        return None, []
    return text, [_message(m) for m in req.messages[:-1]]


def context_key(namespace: str, req: ChatRequest, before: list[JSONObject]) -> str:
    """The semantic partition: everything but the final user turn (system prompt, earlier
    turns, tools, parameters), so a similar question only matches within the same context."""
    return _digest(["semantic", namespace, req.model, before, output_params(req)])


def namespace_of(principal: Principal | None, end_user: str | None, how: Namespacing) -> str:
    """Who may share answers. A key without a team is its own namespace."""
    if how == "shared":
        return "shared"
    key_id = principal.key_id if principal is not None else "anonymous"
    if how == "end_user":
        return f"user:{key_id}:{end_user}" if end_user else f"key:{key_id}"
    if how == "team" and principal is not None and principal.team_id:
        return f"team:{principal.team_id}"
    return f"key:{key_id}"
