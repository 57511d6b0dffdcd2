"""Exact and semantic response caches, their backends, and the policy that decides per request.

See docs/cache.md. The pipeline stage is `opsgate.pipeline.stages.cache.Cache`.
"""

from opsgate.cache.answer import CachedAnswer
from opsgate.cache.build import CacheConfigError, build_cache, build_exact_store
from opsgate.cache.errors import CacheUnavailableError
from opsgate.cache.memory import MemoryStore
from opsgate.cache.service import CacheService, Hit, Purged
from opsgate.cache.store import EntryMeta, ExactStore, PurgeFilter, StoreStats
from opsgate.config.cache import CacheConfig, CachePolicy

__all__ = [
    "CacheConfig",
    "CacheConfigError",
    "CachePolicy",
    "CacheService",
    "CacheUnavailableError",
    "CachedAnswer",
    "EntryMeta",
    "ExactStore",
    "Hit",
    "MemoryStore",
    "PurgeFilter",
    "Purged",
    "StoreStats",
    "build_cache",
    "build_exact_store",
]
