"""The Redis budget ledger: one spend counter per scope and period, shared by every replica.

Per scope and period: a hash (`base` from the database, `spent` live, `held` in flight, one
`r:<id>` field per hold, `created`, `seeded`), a sorted set of hold leases (so a dead
replica's holds expire, see `limits_leases`), and a hash of alerts already fired. Each
operation is one Lua call over every scope of the request, so holds are all or nothing and two
replicas can never both take the last dollar. Counters expire a week after their period ends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from opsgate.access.budgets.ledger import Clock, Fired, LedgerBase
from opsgate.access.budgets.model import (
    AlertSink,
    BudgetScope,
    BudgetStatus,
    Held,
    Period,
    Refusal,
    Reservation,
    ScopeSeen,
    budget_period,
)
from opsgate.access.limits.leases import LeaseKeeper
from opsgate.access.limits.model import ScopeRef
from opsgate.access.limits.redis import ScriptCall, run_script

KEEP_AFTER_END_S = 7 * 86_400

# KEYS: per scope (counter hash, lease zset, fired hash).
# ARGV: now, amount, minimum (-1: none), id, lease expiry; per scope: max, ttl seconds (-1: none).
RESERVE = """
local now, want, minimum = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local id = ARGV[4]
local n = #KEYS / 3
local room, worst = nil, 1
local seen, fresh = {}, {}
for i = 1, n do
  local h, z = KEYS[3*i-2], KEYS[3*i-1]
  local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 100)
  for _, d in ipairs(dead) do
    local amt = tonumber(redis.call('HGET', h, 'r:' .. d))
    if amt then
      redis.call('HINCRBY', h, 'held', -amt)
      redis.call('HDEL', h, 'r:' .. d)
    end
    redis.call('ZREM', z, d)
  end
  local v = redis.call('HMGET', h, 'base', 'spent', 'held', 'seeded', 'created')
  local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0)
  local left = tonumber(ARGV[4+2*i]) - used
  if room == nil or left < room then room, worst = left, i end
  seen[#seen + 1] = used
  if v[4] == '1' then seen[#seen + 1] = '' else seen[#seen + 1] = v[5] or ARGV[1] end
  fresh[i] = not v[5]
end
local amount = want
if room <= 0 or room < want then
  if minimum < 0 or room <= 0 or room < minimum then
    local f = KEYS[3*worst]
    local first = redis.call('HSETNX', f, 'x', 1)
    if tonumber(ARGV[5+2*worst]) >= 0 then redis.call('EXPIRE', f, ARGV[5+2*worst]) end
    return {0, worst, seen[2*worst-1], first}
  end
  amount = room
end
for i = 1, n do
  local h, z = KEYS[3*i-2], KEYS[3*i-1]
  local ttl = tonumber(ARGV[5+2*i])
  if fresh[i] then -- this call creates the counter
    redis.call('HSET', h, 'created', ARGV[1], 'seeded', 0)
    if ttl >= 0 then redis.call('EXPIRE', h, ttl) end
  end
  if amount > 0 then
    redis.call('HINCRBY', h, 'held', amount)
    redis.call('HSET', h, 'r:' .. id, amount)
    redis.call('ZADD', z, ARGV[5], id)
    if ttl >= 0 then redis.call('EXPIRE', z, ttl) end
  end
end
return {1, amount, unpack(seen)}
"""

# KEYS: per scope (counter hash). ARGV: id, extra; per scope: max.
EXTEND = """
local id, extra = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'base', 'spent', 'held', 'r:' .. id)
  if not v[4] then return 0 end
  local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0)
  if used + extra > tonumber(ARGV[2+i]) then return 0 end
end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'held', extra)
  redis.call('HINCRBY', KEYS[i], 'r:' .. id, extra)
end
return 1
"""

# KEYS: per scope (counter hash, lease zset, fired hash).
# ARGV: id, actual; per scope: max, thresholds ("0.5,0.8,1.0"), ttl seconds (-1: none).
SETTLE = """
local id, actual = ARGV[1], ARGV[2]
local fired = {}
for i = 1, #KEYS / 3 do
  local h, z, f = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local max, ttl = tonumber(ARGV[3*i]), tonumber(ARGV[3*i+2])
  local v = redis.call('HMGET', h, 'r:' .. id, 'base', 'created')
  local amt = tonumber(v[1])
  if amt then
    redis.call('HINCRBY', h, 'held', -amt)
    redis.call('HDEL', h, 'r:' .. id)
    redis.call('ZREM', z, id)
  end
  local total = redis.call('HINCRBY', h, 'spent', actual) + (tonumber(v[2]) or 0)
  if not v[3] and ttl >= 0 then redis.call('EXPIRE', h, ttl) end -- recreated: keep it bounded
  for t in string.gmatch(ARGV[3*i+1], '[^,]+') do
    if total >= math.ceil(tonumber(t) * max) and redis.call('HSETNX', f, t, 1) == 1 then
      fired[#fired + 1] = i
      fired[#fired + 1] = t
      fired[#fired + 1] = total
      if ttl >= 0 then redis.call('EXPIRE', f, ttl) end
    end
  end
end
return fired
"""

# KEYS: counter hash. ARGV: base, only-if-missing (1/0), now, ttl seconds (-1: none).
SEED = """
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then
  redis.call('HSET', h, 'base', ARGV[1], 'seeded', 1, 'created', ARGV[3])
  if tonumber(ARGV[4]) >= 0 then redis.call('EXPIRE', h, ARGV[4]) end
  return 1
end
if ARGV[2] == '1' or redis.call('HGET', h, 'seeded') == '1' then return 0 end
redis.call('HSET', h, 'base', ARGV[1], 'seeded', 1)
return 1
"""


def _ttl(period: Period, now: float) -> int:
    """Seconds to keep a counter: a week past its period's end (by the replica's clock)."""
    return -1 if period.end is None else max(1, int(period.end + KEEP_AFTER_END_S - now))


class RedisBudgetLedger(LedgerBase):
    """`BudgetLedger` shared by every process that uses the same Redis and prefix."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "opsgate:",
        clock: Clock = time.time,
        on_alert: AlertSink | None = None,
        lease_ttl: float = 30.0,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        super().__init__(clock=clock, on_alert=on_alert)
        self.client = client
        self.prefix = prefix
        self.keeper = keeper or LeaseKeeper(client, ttl=lease_ttl, clock=clock)
        self._reserve_script = client.register_script(RESERVE)
        self._extend_script = client.register_script(EXTEND)
        self._settle_script = client.register_script(SETTLE)
        self._seed_script = client.register_script(SEED)

    def _keys(self, ref: ScopeRef, period: Period) -> tuple[str, str, str]:
        base = f"{self.prefix}bud:{ref.slug}:{period.key}"
        return base, base + ":leases", base + ":alerts"

    def reserve_call(
        self,
        scopes: Sequence[BudgetScope],
        micros: int,
        *,
        minimum: int | None = None,
        at: float | None = None,
    ) -> ScriptCall[Reservation]:
        """`reserve` as a script call, to share a round trip (scopes must not be empty)."""
        res, now = self._begin(scopes, at)
        micros = max(0, micros)
        raw = self._reserve_call(res, micros, minimum, now)
        return ScriptCall(
            raw.script, raw.keys, raw.args, lambda r: self._conclude(res, raw.parse(r), micros, now)
        )

    def settle_call(self, res: Reservation, micros: int) -> ScriptCall[None] | None:
        """`settle` as a script call; None when already settled or empty."""
        if not self._settling(res):
            return None
        raw = self._settle_call(res, max(0, micros))
        return ScriptCall(raw.script, raw.keys, raw.args, lambda r: self._fire(res, raw.parse(r)))

    async def _reserve(
        self, res: Reservation, micros: int, minimum: int | None, now: float
    ) -> Held | Refusal:
        return await run_script(self._reserve_call(res, micros, minimum, now))

    def _reserve_call(
        self, res: Reservation, micros: int, minimum: int | None, now: float
    ) -> ScriptCall[Held | Refusal]:
        keys: list[str] = []
        args: list[Any] = [repr(now), micros, -1 if minimum is None else minimum, res.id]
        args.append(repr(self.keeper.expiry()))
        for scope, period in zip(res.scopes, res.periods, strict=True):
            keys += self._keys(scope.ref, period)
            args += [scope.max_micros, _ttl(period, now)]

        def parse(reply: Any) -> Held | Refusal:
            if reply[0] == 0:
                return Refusal(int(reply[1]) - 1, int(reply[2]), bool(reply[3]))
            held = Held(int(reply[1]))
            for i in range(len(res.scopes)):
                used, created = reply[2 + 2 * i], reply[3 + 2 * i]
                held.seen.append(ScopeSeen(int(used), float(created) if created else None))
            if held.amount > 0:
                for scope, period in zip(res.scopes, res.periods, strict=True):
                    self.keeper.hold(self._keys(scope.ref, period)[1], res.id)
            return held

        return ScriptCall(self._reserve_script, keys, args, parse)

    async def _extend(self, res: Reservation, micros: int) -> bool:
        keys = [self._keys(s.ref, p)[0] for s, p in zip(res.scopes, res.periods, strict=True)]
        args: list[Any] = [res.id, micros, *(s.max_micros for s in res.scopes)]
        return bool(await self._extend_script(keys=keys, args=args))

    async def _settle(self, res: Reservation, micros: int) -> Fired:
        return await run_script(self._settle_call(res, micros))

    def _settle_call(self, res: Reservation, micros: int) -> ScriptCall[Fired]:
        keys: list[str] = []
        args: list[Any] = [res.id, micros]
        now = self._clock()
        for scope, period in zip(res.scopes, res.periods, strict=True):
            names = self._keys(scope.ref, period)
            keys += names
            self.keeper.drop(names[1], res.id)
            thresholds = ",".join(repr(float(t)) for t in scope.policy.alert_at)
            args += [scope.max_micros, thresholds, _ttl(period, now)]

        def parse(reply: Any) -> Fired:
            return [
                (int(reply[i]) - 1, float(reply[i + 1]), int(reply[i + 2]))
                for i in range(0, len(reply), 3)
            ]

        return ScriptCall(self._settle_script, keys, args, parse)

    async def seed(
        self, ref: ScopeRef, period: Period, micros: int, *, only_if_missing: bool
    ) -> bool:
        key = self._keys(ref, period)[0]
        now = self._clock()
        args = [micros, 1 if only_if_missing else 0, repr(now), _ttl(period, now)]
        return bool(await self._seed_script(keys=[key], args=args))

    async def status(self, scope: BudgetScope) -> BudgetStatus:
        period = budget_period(scope.policy, self._clock())
        raw = await self.client.hmget(self._keys(scope.ref, period)[0], ["base", "spent", "held"])
        base, spent, held = (int(v) if v is not None else 0 for v in raw)
        return BudgetStatus(scope, period, base + spent, held)

    async def aclose(self) -> None:
        await self.keeper.aclose()
