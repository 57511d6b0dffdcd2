"""Which exceptions mean "a backend is down", and the 503 each becomes.

A database, Redis or cache backend that cannot answer is not the caller's fault and not a bug:
the app's exception handlers (app.py, api/responses.py) turn these into an OpenAI-shaped 503
(`store_unavailable`, `cache_unavailable`, `redis_unavailable`) and the dashboard into a 503 page,
wherever a route raised them. Nothing else maps them, so no route needs `try`/`except` for it.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import SQLAlchemyError

from opsgate.audit import AuditUnavailableError
from opsgate.cache.errors import CacheUnavailableError
from opsgate.errors import ServiceUnavailableError
from opsgate.store.errors import StoreUnavailableError

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
_ANSWERS: tuple[tuple[tuple[type[Exception], ...], str, str], ...] = (
    ((CacheUnavailableError,), "the cache backend is unavailable; try again", "cache_unavailable"),
    (_REDIS_DOWN, "Redis is unavailable; try again", "redis_unavailable"),
    ((StoreUnavailableError,), "the trace database is unavailable; try again", "store_unavailable"),
    ((AuditUnavailableError,), "the audit log is unavailable; try again", "store_unavailable"),
    # The database's driver errors and a refused or reset connection (asyncpg raises OSError).
    ((SQLAlchemyError, OSError), "the database is unavailable; try again", "store_unavailable"),
)
OUTAGES: tuple[type[Exception], ...] = tuple(kind for kinds, _, _ in _ANSWERS for kind in kinds)
"""Register one exception handler per class: Starlette finds it by the raised type's MRO."""


def unavailable(exc: BaseException) -> ServiceUnavailableError:
    """The 503 for an outage (one of `OUTAGES`)."""
    for kinds, message, code in _ANSWERS:
        if isinstance(exc, kinds):
            return ServiceUnavailableError(message, code=code)
    return ServiceUnavailableError("a backend is unavailable; try again")
