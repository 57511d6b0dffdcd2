"""The cache's one error: a backend that cannot answer. The gateway then serves without the
cache (the request is traced as `bypass`); it never fails a request."""

from __future__ import annotations


class CacheUnavailableError(Exception):
    """A cache backend (Redis, the index) failed or timed out."""
