"""The `knowledge_base` a chat request names (or a config binding gives it), read once.

    {"model": "...", "messages": [...], "knowledge_base": {"name": "handbook", "top_k": 5}}

The field is the gateway's own and never goes upstream. A string is short for `{name: ...}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsgate.access.principal import Principal
from opsgate.chat import ChatRequest
from opsgate.config.rag import Binding
from opsgate.errors import BadRequestError
from opsgate.rag.model import Filters
from opsgate.rag.retrieve import Mode

FIELD = "knowledge_base"
_KEYS = frozenset({"name", "top_k", "team_id", "filters", "mode"})


@dataclass(frozen=True, slots=True)
class KnowledgeRef:
    name: str
    top_k: int | None = None
    team_id: str | None = None
    filters: Filters = field(default_factory=Filters)
    mode: Mode = "hybrid"


def _bad(message: str, param: str = FIELD) -> BadRequestError:
    return BadRequestError(message, code="invalid_knowledge_base", param=param)


def read_ref(value: Any) -> KnowledgeRef:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise _bad("knowledge_base must be a name or an object {name, top_k, filters}")
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise _bad(f"knowledge_base has unknown fields: {', '.join(unknown)}")
    name, top_k, team = value.get("name"), value.get("top_k"), value.get("team_id")
    if not isinstance(name, str) or not name:
        raise _bad("knowledge_base.name must be a non-empty string", f"{FIELD}.name")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)):
        raise _bad("knowledge_base.top_k must be an integer", f"{FIELD}.top_k")
    if team is not None and not isinstance(team, str):
        raise _bad("knowledge_base.team_id must be a string", f"{FIELD}.team_id")
    mode: Mode
    match value.get("mode", "hybrid"):
        case "hybrid" | "bm25" | "vector" as mode:
            pass
        case _:
            raise _bad("knowledge_base.mode must be hybrid, bm25 or vector", f"{FIELD}.mode")
    return KnowledgeRef(name, top_k, team, read_filters(value.get("filters"), FIELD), mode)


def read_filters(value: Any, where: str) -> Filters:
    if value is None:
        return Filters()
    if not isinstance(value, Mapping) or set(value) - {"paths", "tags", "document_ids"}:
        raise _bad("filters must be an object with paths, tags and/or document_ids", where)
    lists = {}
    for key in ("paths", "tags", "document_ids"):
        items = value.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise _bad(f"filters.{key} must be a list of strings", f"{where}.filters.{key}")
        if len(items) > 50:
            raise _bad(f"filters.{key} takes at most 50 values", f"{where}.filters.{key}")
        lists[key] = tuple(items)
    return Filters(lists["paths"], lists["tags"], lists["document_ids"])


def bound_ref(
    bindings: tuple[Binding, ...], model: str, who: Principal | None
) -> KnowledgeRef | None:
    """The first config binding that matches the request's model, team and key."""
    for binding in bindings:
        if binding.model is not None and binding.model != model:
            continue
        if binding.team is not None and (who is None or who.team_id != binding.team):
            continue
        if binding.key is not None and (who is None or who.key_id != binding.key):
            continue
        return KnowledgeRef(binding.knowledge_base, binding.top_k)
    return None


def split_request(req: ChatRequest) -> tuple[ChatRequest, Any]:
    """The request without the field, and the field's value (None when absent)."""
    if FIELD not in req.params:
        return req, None
    params = {k: v for k, v in req.params.items() if k != FIELD}
    return ChatRequest(req.model, req.messages, req.stream, params), req.params[FIELD]


def query_of(messages: list[dict[str, Any]]) -> str:
    """The text of the last user turn (its text parts joined)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                str(p.get("text", ""))
                for p in content
                if isinstance(p, Mapping) and p.get("type") == "text"
            )
        return ""
    return ""
