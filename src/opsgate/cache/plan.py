"""The plan for one request: made once before the lookup, used again to store the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsgate.access.principal import Principal
from opsgate.cache.keys import context_key, exact_key, namespace_of, split_last_user
from opsgate.cache.policy import Access, Directives, decide, policy_for
from opsgate.cache.store import EntryMeta
from opsgate.chat import ChatRequest
from opsgate.config.cache import CacheConfig


@dataclass(slots=True)
class SemanticQuery:
    partition: str
    """Namespace + model + everything but the final user turn, hashed."""
    text: str
    """The final user turn: what gets embedded."""
    threshold: float | None = None
    """A per-scope override of the semantic cache's threshold."""
    vector: Any = None
    """The embedding, once made (the lookup's vector is reused to store)."""


@dataclass(slots=True)
class Plan:
    access: Access
    key: str
    meta: EntryMeta
    semantic: SemanticQuery | None = None


def make_plan(
    config: CacheConfig,
    req: ChatRequest,
    principal: Principal | None,
    end_user: str | None,
    found: Directives,
) -> Plan:
    namespace = namespace_of(principal, end_user, config.namespace)
    access = decide(policy_for(config, principal), found, req)
    meta = EntryMeta(
        namespace=namespace,
        model=req.model,
        key_id=principal.key_id if principal is not None else None,
        end_user=end_user,
    )
    if not (access.read or access.write):
        return Plan(access, "", meta)
    plan = Plan(access, exact_key(namespace, req), meta)
    if config.semantic.enabled and access.semantic:
        text, before = split_last_user(req)
        if text is not None:
            partition = context_key(namespace, req, before)
            plan.semantic = SemanticQuery(partition, text, access.threshold)
    return plan
