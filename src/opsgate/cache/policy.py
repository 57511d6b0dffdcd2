"""What one request may do with the cache: its scope's policy plus the caller's directives.

Directives come from the `x-opsgate-cache` header (comma-separated: `no-cache`, `no-store`,
`ttl=SECONDS`) or a `cache` body field (`true`, `false`, or an object with `no-cache`,
`no-store`, `ttl`), which the gateway removes before calling the upstream. `no-cache` skips the
lookup (the fresh answer is still stored), `no-store` keeps the answer out of the cache, and a
`ttl` (or `"cache": true`) opts a non-deterministic request in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsgate.access.principal import Principal
from opsgate.chat import ChatRequest
from opsgate.config.cache import CacheConfig, CachePolicy
from opsgate.errors import BadRequestError

HEADER = "x-opsgate-cache"


@dataclass(frozen=True, slots=True)
class Directives:
    no_cache: bool = False
    no_store: bool = False
    ttl: float | None = None
    opt_in: bool = False


def _bad(message: str, param: str) -> BadRequestError:
    return BadRequestError(message, code="invalid_cache_directive", param=param)


def _ttl(raw: Any, param: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if isinstance(raw, bool) or not value > 0:
        raise _bad(f"{param}: ttl must be a positive number of seconds", param)
    return value


def parse_header(raw: str) -> Directives:
    no_cache = no_store = False
    ttl: float | None = None
    for token in (t.strip().lower() for t in raw.split(",")):
        if token == "no-cache":
            no_cache = True
        elif token == "no-store":
            no_store = True
        elif token.startswith("ttl="):
            ttl = _ttl(token[4:], HEADER)
        elif token:
            raise _bad(
                f"header {HEADER}: unknown directive {token!r}; expected no-cache, no-store "
                "or ttl=SECONDS",
                HEADER,
            )
    return Directives(no_cache, no_store, ttl, opt_in=ttl is not None)


def parse_body(value: Any) -> Directives:
    if value is None:
        return Directives()
    if isinstance(value, bool):
        return Directives(opt_in=True) if value else Directives(no_cache=True, no_store=True)
    if not isinstance(value, dict):
        raise _bad("'cache' must be a boolean or an object", "cache")
    known = {"no-cache", "no_cache", "no-store", "no_store", "ttl"}
    if unknown := set(value) - known:
        raise _bad(
            f"'cache' has unknown fields {sorted(unknown)}; expected {sorted(known)}", "cache"
        )
    ttl = _ttl(value["ttl"], "cache.ttl") if value.get("ttl") is not None else None
    return Directives(
        no_cache=bool(value.get("no-cache") or value.get("no_cache")),
        no_store=bool(value.get("no-store") or value.get("no_store")),
        ttl=ttl,
        opt_in=ttl is not None,
    )


def directives(headers: Mapping[str, str], req: ChatRequest) -> Directives:
    """Header and body directives together (either may switch reading or storing off)."""
    head = parse_header(headers.get(HEADER, ""))
    body = parse_body(req.params.get("cache"))
    return Directives(
        no_cache=head.no_cache or body.no_cache,
        no_store=head.no_store or body.no_store,
        ttl=head.ttl if head.ttl is not None else body.ttl,
        opt_in=head.opt_in or body.opt_in,
    )


def policy_for(config: CacheConfig, principal: Principal | None) -> CachePolicy:
    """The key's policy, else its team's, else the default."""
    if principal is not None:
        if principal.key_id in config.keys:
            return config.keys[principal.key_id]
        if principal.team_id and principal.team_id in config.teams:
            return config.teams[principal.team_id]
    return config.default


def deterministic(req: ChatRequest) -> bool:
    """Temperature 0 is as deterministic as an upstream gets; the API default (1) is not."""
    value = req.params.get("temperature")
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


@dataclass(frozen=True, slots=True)
class Access:
    """The outcome: whether to read and to write, and for how long an answer stays."""

    read: bool
    write: bool
    ttl: float
    semantic: bool
    threshold: float | None
    reason: str | None = None
    """Why nothing is read, for the trace: `off`, `no-cache`, `not-deterministic`."""


def decide(policy: CachePolicy, found: Directives, req: ChatRequest) -> Access:
    ttl = min(found.ttl or policy.ttl, policy.max_ttl)
    reason: str | None = None
    if policy.mode == "off":
        reason = "off"
    elif policy.mode == "deterministic" and not (found.opt_in or deterministic(req)):
        reason = "not-deterministic"
    if reason is not None:
        return Access(False, False, ttl, False, None, reason)
    return Access(
        read=not found.no_cache,
        write=not found.no_store,
        ttl=ttl,
        semantic=policy.semantic,
        threshold=policy.threshold,
        reason="no-cache" if found.no_cache else None,
    )
