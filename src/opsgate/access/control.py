"""`AccessService`: the process-wide access part — key resolution on the hot path, the store
behind it, and the change feed that keeps every replica's cache honest.

One per process (the `Gateway` owns it); config reloads keep it, so the cache survives them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.cache import Entry, KeyCache
from opsgate.access.keys import DUMMY_HASH, hash_key, same_hash, well_formed
from opsgate.access.principal import Principal
from opsgate.access.store import AccessStore
from opsgate.access.sync import ChangeFeed
from opsgate.errors import AuthenticationError

log = logging.getLogger("opsgate.access")

REDIS_PREFIX_ENV = "OPSGATE_REDIS_PREFIX"
DEFAULT_REDIS_PREFIX = "opsgate:"


def malformed_key() -> AuthenticationError:
    return AuthenticationError(
        "Malformed API key: opsgate keys start with `og-` followed by 43 or more characters "
        "(or use the master key).",
        code="invalid_api_key",  # OpenAI's code for any bad key; the message says which
    )


def _unknown_key() -> AuthenticationError:
    return AuthenticationError("Incorrect API key provided: no such key.", code="invalid_api_key")


def _inactive(status: str, expires_at: float | None) -> AuthenticationError:
    if status == "expired":
        when = datetime.fromtimestamp(expires_at or 0, UTC).isoformat(timespec="seconds")
        return AuthenticationError(
            f"This API key expired at {when}; ask an admin for a new one.",
            code="expired_api_key",
        )
    if status == "revoked":
        return AuthenticationError("This API key has been revoked.", code="revoked_api_key")
    return AuthenticationError("This API key is disabled.", code="disabled_api_key")


class AccessService:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        redis_url: str | None = None,
        redis_prefix: str = DEFAULT_REDIS_PREFIX,
        cache: KeyCache | None = None,
        poll_interval: float = 0.5,
        backstop_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = AccessStore(engine)
        self.cache = cache or KeyCache()
        self.clock = clock
        self.feed = ChangeFeed(
            self.store,
            self._on_change,
            redis_url=redis_url,
            prefix=redis_prefix,
            poll_interval=poll_interval,
            backstop_interval=backstop_interval,
        )
        self.has_keys: bool | None = None
        """None until the database answered once; sticky once True (keys are never deleted)."""
        self._loading: dict[str, asyncio.Task[Entry]] = {}

    @classmethod
    def from_settings(
        cls,
        engine: AsyncEngine,
        redis_url: str | None,
        env: Mapping[str, str] = os.environ,
    ) -> AccessService:
        """Redis prefix from `OPSGATE_REDIS_PREFIX` (tests and shared Redis servers set it)."""
        prefix = env.get(REDIS_PREFIX_ENV) or DEFAULT_REDIS_PREFIX
        return cls(engine, redis_url=redis_url, redis_prefix=prefix)

    async def start(self) -> None:
        await self._refresh_has_keys()
        await self.feed.start()

    async def aclose(self) -> None:
        await self.feed.aclose()
        for task in self._loading.values():
            task.cancel()

    # --- the hot path --------------------------------------------------------------------------

    async def resolve(self, token: str) -> Principal:
        """The principal for a virtual key, or AuthenticationError (401) saying why not.

        Known and unknown keys take the same path: one cache look-up (or one indexed read),
        then one constant-time hash comparison (against a dummy hash when nothing matched).
        """
        if not well_formed(token):
            raise malformed_key()
        key_hash = hash_key(token)
        entry = self.cache.get(key_hash) or await self._load(key_hash)
        stored = entry.key.key_hash if entry.key is not None else DUMMY_HASH
        matched = same_hash(stored, key_hash)
        if entry.key is None or entry.principal is None or not matched:
            raise _unknown_key()
        status = entry.key.status(self.clock())
        if status != "active":
            raise _inactive(status, entry.key.expires_at)
        return entry.principal

    async def principal_of(self, key_id: str) -> Principal | None:
        """The principal a key id stands for now (read afresh, one indexed query), or None when
        the key is unknown, revoked, disabled or expired: what a dashboard session re-checks."""
        found = await self.store.key_by_id(key_id)
        if found is None:
            return None
        key, team, team_name = found
        return key.principal(team, team_name) if key.status(self.clock()) == "active" else None

    async def _load(self, key_hash: str) -> Entry:
        """One database read per hash at a time, however many requests miss together."""
        task = self._loading.get(key_hash)
        if task is None:
            task = asyncio.ensure_future(self._fetch(key_hash))
            self._loading[key_hash] = task
            task.add_done_callback(lambda _: self._loading.pop(key_hash, None))
        return await asyncio.shield(task)

    async def _fetch(self, key_hash: str) -> Entry:
        generation = self.cache.generation
        found = await self.store.key_by_hash(key_hash)
        if found is None:
            self.cache.put(key_hash, None, generation)
            return Entry(None, None, 0.0)
        key, team, team_name = found
        principal = key.principal(team, team_name)
        self.cache.put(key_hash, (key, principal), generation)
        return Entry(key, principal, 0.0)

    # --- changes -------------------------------------------------------------------------------

    async def changed(self) -> None:
        """Call after committing an access change here: this replica at once, others via feed."""
        await self._on_change()
        await self.feed.announce()

    async def _on_change(self) -> None:
        self.cache.clear()
        if not self.has_keys:
            await self._refresh_has_keys()

    async def _refresh_has_keys(self) -> None:
        try:
            self.has_keys = await self.store.has_keys()
        except Exception as exc:
            log.warning("cannot tell whether virtual keys exist yet: %s", exc)
