"""Build the process's cache from its config section (phase two: runtime objects)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opsgate.cache.memory import MemoryStore
from opsgate.cache.service import CacheService, SemanticIndex
from opsgate.cache.store import ExactStore
from opsgate.config.cache import CacheConfig

if TYPE_CHECKING:
    from opsgate.cache.embed.gateway import EmbedCall

log = logging.getLogger("opsgate.cache")


class CacheConfigError(ValueError):
    """The cache section cannot be built (a Redis backend without a URL, ...)."""


def build_exact_store(config: CacheConfig, redis_url: str | None = None) -> ExactStore:
    exact = config.exact
    if exact.backend == "memory":
        return MemoryStore(max_entries=exact.max_entries, max_bytes=exact.max_bytes)
    url = exact.redis_url or redis_url
    if not url:
        raise CacheConfigError(
            "cache.exact.backend is redis but neither cache.exact.redis_url nor "
            "settings.redis_url is set"
        )
    from opsgate.cache.redis_store import RedisStore

    return RedisStore.from_url(url, exact.prefix, exact.timeout)


def build_semantic(
    config: CacheConfig, embed_call: EmbedCall | None = None, redis_url: str | None = None
) -> SemanticIndex:
    """The semantic index with its embedder, loaded from `semantic.path` when saved there, and
    kept in step with the other replicas through Redis when `semantic.shared`."""
    from opsgate.cache.embed import build_embedder
    from opsgate.cache.semantic.persist import load
    from opsgate.cache.semantic.store import SemanticStore

    sem = config.semantic
    try:
        embedder = build_embedder(sem.embedder, embed_call)
    except RuntimeError as exc:  # EmbedderUnavailableError: a missing extra or model file
        raise CacheConfigError(f"cache.semantic.embedder: {exc}") from exc
    store = SemanticStore(
        embedder,
        threshold=sem.threshold,
        index=sem.index,
        dtype=sem.dtype,
        max_entries=sem.max_entries,
        path=None if sem.shared else sem.path,
    )
    if sem.shared:
        from opsgate.cache.semantic.shared import SharedSemanticStore

        url = config.exact.redis_url or redis_url
        if config.exact.backend != "redis" or not url:
            raise CacheConfigError(
                "cache.semantic.shared needs the exact cache in Redis (cache.exact.backend: redis)"
            )
        return SharedSemanticStore(store, url, config.exact.prefix, timeout=config.exact.timeout)
    if store.path is not None and store.path.exists():
        loaded = load(store, store.path)
        log.info("semantic cache: %d entries loaded from %s", loaded, store.path)
    return store


def build_cache(
    config: CacheConfig, redis_url: str | None = None, *, embed_call: EmbedCall | None = None
) -> CacheService | None:
    """The process-wide cache, or None when the config turns it off. `embed_call` serves the
    `gateway` embedder (see `opsgate.gateway.router_embed`)."""
    if not config.enabled:
        return None
    semantic = build_semantic(config, embed_call, redis_url) if config.semantic.enabled else None
    return CacheService(
        build_exact_store(config, redis_url),
        semantic,
        max_entry_bytes=config.exact.max_entry_bytes,
    )
