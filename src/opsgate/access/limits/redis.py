"""The Redis rate limiter: one combined limit for every replica and worker.

Why a Lua script rather than the `limits` library: `limits` checks one key per call, so three
scopes would cost three round trips and could not be all-or-nothing (a team refusal after the
key was already charged), and it has no leases for parallel slots. One script checks and
charges every scope atomically in a single round trip, which is what keeps admission well
under a millisecond. The arithmetic is `opsgate.access.limits.model`' (the script mirrors
`weighted`, fed the same numbers), so both backends decide alike.

Time comes from the replica's clock (ms-level NTP skew is negligible against a 60 s window)
so that tests can drive it; leases are scored by it too. On Redis Cluster every key of one
call must share a slot: give a prefix with a hash tag (`{opsgate}:`).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from opsgate.access.limits.leases import Clock, LeaseKeeper
from opsgate.access.limits.model import (
    WINDOW_S,
    Counts,
    LimitExceededError,
    LimitScope,
    Permit,
    check,
    status_of,
    window_of,
)

# KEYS: per scope (this window's hash, last window's hash, parallel zset).
# ARGV: elapsed, window, tokens, lease, lease expiry, key ttl, now; per scope: rpm, tpm, par.
ACQUIRE = """
local elapsed, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, now = tonumber(ARGV[3]), tonumber(ARGV[7])
local n = #KEYS / 3
local seen = {}
for i = 1, n do
  local cur, prev, par = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local rpm, tpm = tonumber(ARGV[5+3*i]), tonumber(ARGV[6+3*i])
  local maxpar = tonumber(ARGV[7+3*i])
  local c = redis.call('HMGET', cur, 'r', 't')
  local p = redis.call('HMGET', prev, 'r', 't')
  local cr, ct = tonumber(c[1]) or 0, tonumber(c[2]) or 0
  local pr, pt = tonumber(p[1]) or 0, tonumber(p[2]) or 0
  local inuse = 0
  if maxpar >= 0 then
    redis.call('ZREMRANGEBYSCORE', par, '-inf', now)
    inuse = redis.call('ZCARD', par)
  end
  local row = {pr, cr, pt, ct, inuse}
  if rpm >= 0 and pr * (window - elapsed) / window + cr + 1 > rpm then
    return {0, i, unpack(row)}
  end
  if tpm >= 0 and pt * (window - elapsed) / window + ct + math.min(tokens, tpm) > tpm then
    return {0, i, unpack(row)}
  end
  if maxpar >= 0 and inuse >= maxpar then
    return {0, i, unpack(row)}
  end
  for _, v in ipairs(row) do seen[#seen + 1] = v end
end
for i = 1, n do
  local cur, par = KEYS[3*i-2], KEYS[3*i]
  -- TTLs are set when a key is new (count 0): the lease keeper extends live lease sets.
  if redis.call('HINCRBY', cur, 'r', 1) == 1 then redis.call('EXPIRE', cur, ARGV[6]) end
  if tokens > 0 then redis.call('HINCRBY', cur, 't', tokens) end
  if tonumber(ARGV[7+3*i]) >= 0 then
    redis.call('ZADD', par, ARGV[5], ARGV[4])
    if seen[5*i] == 0 then redis.call('EXPIRE', par, ARGV[6]) end
  end
end
return {1, unpack(seen)}
"""

# KEYS: per scope (the charged window's hash, parallel zset).
# ARGV: request delta, token delta, lease ('' for none); per scope: 1 when it has a slot.
RELEASE = """
local dr, dt, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = 1, #KEYS / 2 do
  local win, par = KEYS[2*i-1], KEYS[2*i]
  if (dr ~= 0 or dt ~= 0) and redis.call('EXISTS', win) == 1 then
    if dr ~= 0 then redis.call('HINCRBY', win, 'r', dr) end
    if dt ~= 0 then redis.call('HINCRBY', win, 't', dt) end
  end
  if lease ~= '' and ARGV[3+i] == '1' then redis.call('ZREM', par, lease) end
end
return 1
"""


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ScriptCall(Generic[T]):
    """One Lua call, prepared, and how to read its reply: calls of several parts can share a
    round trip (`run_scripts`)."""

    script: AsyncScript
    keys: list[str]
    args: list[Any]
    parse: Callable[[Any], T]


async def run_scripts(
    client: Redis, calls: Sequence[ScriptCall[Any]], *, return_exceptions: bool = False
) -> list[Any]:
    """Run `calls` in one pipelined round trip (not a transaction: each script is atomic on
    its own); a script Redis forgot (restart, SCRIPT FLUSH) is loaded and only it re-run.
    With `return_exceptions`, a call whose reply parses to an error gives that error in its
    place instead of raising, so the caller can undo the others."""
    async with client.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        replies = await pipe.execute(raise_on_error=False)
    for i, (call, reply) in enumerate(zip(calls, replies, strict=True)):
        if isinstance(reply, NoScriptError):
            replies[i] = await call.script(keys=call.keys, args=call.args)
        elif isinstance(reply, Exception):
            raise reply
    outcomes: list[Any] = []
    for call, reply in zip(calls, replies, strict=True):
        try:
            outcomes.append(call.parse(reply))
        except Exception as exc:
            if not return_exceptions:
                raise
            outcomes.append(exc)
    return outcomes


async def run_script(call: ScriptCall[T]) -> T:
    return call.parse(await call.script(keys=call.keys, args=call.args))


def _limit(value: int | None) -> int:
    return -1 if value is None else value


def _fallback(scope: LimitScope, use: Counts) -> LimitExceededError:
    """Only if float rounding ever made Lua refuse what Python would admit: still a 429."""
    lim = scope.limits
    if lim.rpm is not None:
        return LimitExceededError(scope.ref, "rpm", lim.rpm, use.cur_requests, 1.0)
    if lim.tpm is not None:
        return LimitExceededError(scope.ref, "tpm", lim.tpm, use.cur_tokens, 1.0)
    return LimitExceededError(scope.ref, "max_parallel", lim.max_parallel or 0, use.parallel, 1.0)


class RedisRateLimiter:
    """`RateLimiter` shared by every process that uses the same Redis and prefix."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "opsgate:",
        clock: Clock = time.time,
        window: float = WINDOW_S,
        lease_ttl: float = 30.0,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._clock = clock
        self._window_s = window
        self._key_ttl = math.ceil(2 * window + 10)
        self.keeper = keeper or LeaseKeeper(client, ttl=lease_ttl, clock=clock)
        self._acquire = client.register_script(ACQUIRE)
        self._release = client.register_script(RELEASE)

    def _win_key(self, scope: LimitScope, window: int) -> str:
        return f"{self.prefix}rl:{scope.ref.slug}:{window}"

    def _par_key(self, scope: LimitScope) -> str:
        return f"{self.prefix}par:{scope.ref.slug}"

    async def acquire(self, scopes: Sequence[LimitScope], tokens: int = 0) -> Permit:
        return await run_script(self.acquire_call(scopes, tokens))

    def acquire_call(self, scopes: Sequence[LimitScope], tokens: int = 0) -> ScriptCall[Permit]:
        now = self._clock()
        window = window_of(now, self._window_s)
        lease = uuid.uuid4().hex if any(s.limits.max_parallel is not None for s in scopes) else ""
        keys: list[str] = []
        args: list[Any] = [
            repr(now - window * self._window_s),
            repr(self._window_s),
            tokens,
            lease,
            repr(self.keeper.expiry()),
            self._key_ttl,
            repr(now),
        ]
        for scope in scopes:
            keys += [self._win_key(scope, window), self._win_key(scope, window - 1)]
            keys.append(self._par_key(scope))
            lim = scope.limits
            args += [_limit(lim.rpm), _limit(lim.tpm), _limit(lim.max_parallel)]

        def parse(reply: Any) -> Permit:
            if reply[0] == 0:
                scope = scopes[int(reply[1]) - 1]
                use = Counts(*map(int, reply[2:7]))
                raise check([scope], [use], tokens, now, self._window_s) or _fallback(scope, use)
            seen = [Counts(*map(int, reply[1 + 5 * i : 6 + 5 * i])) for i in range(len(scopes))]
            for scope in scopes:
                if lease and scope.limits.max_parallel is not None:
                    self.keeper.hold(self._par_key(scope), lease)
            status = status_of(scopes, seen, tokens, now, self._window_s)
            return Permit(tuple(scopes), tokens, window, lease or None, status)

        return ScriptCall(self._acquire, keys, args, parse)

    async def release(self, permit: Permit, tokens: int | None = None) -> None:
        call = self.release_call(permit, tokens)
        if call is not None:
            await run_script(call)

    async def refund(self, permit: Permit) -> None:
        call = self._undo(permit, -1, -permit.tokens)
        if call is not None:
            await run_script(call)

    def release_call(self, permit: Permit, tokens: int | None = None) -> ScriptCall[None] | None:
        """The release as a script call; None when there is nothing to undo."""
        return self._undo(permit, 0, 0 if tokens is None else tokens - permit.tokens)

    def _undo(self, permit: Permit, requests: int, token_delta: int) -> ScriptCall[None] | None:
        if permit.released:
            return None
        permit.released = True
        if window_of(self._clock(), self._window_s) > permit.window + 1:
            requests = token_delta = 0  # the charged window no longer counts
        keys: list[str] = []
        args: list[Any] = [requests, token_delta, permit.lease or ""]
        for scope in permit.scopes:
            par = self._par_key(scope)
            keys += [self._win_key(scope, permit.window), par]
            slot = permit.lease is not None and scope.limits.max_parallel is not None
            args.append("1" if slot else "0")
            if slot and permit.lease is not None:
                self.keeper.drop(par, permit.lease)
        if not (requests or token_delta or permit.lease):
            return None
        return ScriptCall(self._release, keys, args, lambda _: None)

    async def aclose(self) -> None:
        await self.keeper.aclose()
