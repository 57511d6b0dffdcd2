"""The in-process rate limiter: the embedded default, and the reference the Redis one matches.

Two windows per scope (this minute and the last), rolled lazily on access; idle scopes are
swept once a window so millions of end users do not pile up.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opsgate.access.limits.model import (
    WINDOW_S,
    Counts,
    LimitScope,
    Permit,
    check,
    status_of,
    window_of,
)

Clock = Callable[[], float]


@dataclass(slots=True)
class _Counter:
    window: int = 0
    requests: int = 0
    tokens: int = 0
    prev_requests: int = 0
    prev_tokens: int = 0
    parallel: int = 0

    def roll(self, window: int) -> None:
        if window == self.window:
            return
        if window == self.window + 1:
            self.prev_requests, self.prev_tokens = self.requests, self.tokens
        else:
            self.prev_requests = self.prev_tokens = 0
        self.window, self.requests, self.tokens = window, 0, 0

    def usage(self) -> Counts:
        return Counts(
            self.prev_requests, self.requests, self.prev_tokens, self.tokens, self.parallel
        )

    def add_tokens(self, window: int, delta: int) -> None:
        """Correct the window that was charged, if it still counts."""
        if window == self.window:
            self.tokens = max(0, self.tokens + delta)
        elif window == self.window - 1:
            self.prev_tokens = max(0, self.prev_tokens + delta)


class MemoryRateLimiter:
    """`RateLimiter` for one process. Not shared: with several workers, use Redis."""

    def __init__(self, *, clock: Clock = time.time, window: float = WINDOW_S) -> None:
        self._clock = clock
        self._window_s = window
        self._counters: dict[str, _Counter] = {}
        self._swept = 0

    async def acquire(self, scopes: Sequence[LimitScope], tokens: int = 0) -> Permit:
        now = self._clock()
        window = window_of(now, self._window_s)
        self._sweep(window)
        counters = [self._counters.setdefault(s.ref.slug, _Counter(window)) for s in scopes]
        for counter in counters:
            counter.roll(window)
        seen = [c.usage() for c in counters]
        refused = check(scopes, seen, tokens, now, self._window_s)
        if refused is not None:
            raise refused
        lease = None
        for scope, counter in zip(scopes, counters, strict=True):
            counter.requests += 1
            counter.tokens += tokens
            if scope.limits.max_parallel is not None:
                counter.parallel += 1
                lease = lease or uuid.uuid4().hex
        status = status_of(scopes, seen, tokens, now, self._window_s)
        return Permit(tuple(scopes), tokens, window, lease, status)

    async def release(self, permit: Permit, tokens: int | None = None) -> None:
        self._undo(permit, 0, 0 if tokens is None else tokens - permit.tokens)

    async def refund(self, permit: Permit) -> None:
        self._undo(permit, 1, -permit.tokens)

    def _undo(self, permit: Permit, requests: int, token_delta: int) -> None:
        if permit.released:
            return
        permit.released = True
        window = window_of(self._clock(), self._window_s)
        for scope in permit.scopes:
            counter = self._counters.get(scope.ref.slug)
            if counter is None:
                continue
            counter.roll(window)
            if permit.lease is not None and scope.limits.max_parallel is not None:
                counter.parallel = max(0, counter.parallel - 1)
            if requests and permit.window == counter.window:
                counter.requests = max(0, counter.requests - requests)
            elif requests and permit.window == counter.window - 1:
                counter.prev_requests = max(0, counter.prev_requests - requests)
            if token_delta:
                counter.add_tokens(permit.window, token_delta)

    def _sweep(self, window: int) -> None:
        """Drop counters idle for two windows with no request in flight."""
        if window == self._swept:
            return
        self._swept = window
        idle = [k for k, c in self._counters.items() if c.window < window - 1 and c.parallel == 0]
        for key in idle:
            del self._counters[key]

    async def aclose(self) -> None:
        return None
