"""`AccessService` on the real databases (SQLite and PostgreSQL): resolution, the cache in front
of the database, equal work for known and unknown keys, and invalidation between processes'
worth of state (two independent `AccessService`s on one database)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

import opsgate.access.control as control_module
from opsgate.access.control import AccessService
from opsgate.access.errors import AccessStoreUnavailableError
from opsgate.access.keys import generate_key
from opsgate.access.manage import AccessAdmin
from opsgate.access.models import (
    BudgetIn,
    BudgetSet,
    KeyCreate,
    KeyUpdate,
    LimitsIn,
    TeamCreate,
    UserCreate,
)
from opsgate.access.principal import MASTER, Role
from opsgate.errors import AuthenticationError
from opsgate.store import dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from tests.fixtures.redisdb import REDIS_URL
from tests.store.conftest import dead_port


@pytest.fixture
async def controls(database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """`await make(**options)` → a started AccessService on the test's database."""
    await upgrade(database_url)
    made: list[tuple[AccessService, Any]] = []

    async def make(**options: Any) -> AccessService:
        engine = make_engine(database_url)
        control = AccessService(engine, **options)
        await control.start()
        made.append((control, engine))
        return control

    yield make
    for control, engine in made:
        await control.aclose()
        await dispose_engine(engine)


def _count_key_reads(control: AccessService) -> list[str]:
    seen: list[str] = []
    engine = control.store._engine.sync_engine

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_keys" in statement and "key_hash" in statement:
            seen.append(statement)

    return seen


async def _world(admin: AccessAdmin) -> tuple[str, str]:
    await admin.create_team(
        MASTER,
        TeamCreate(
            id="t", name="T", budget=BudgetIn(max_usd=Decimal(100)), limits=LimitsIn(rpm=60)
        ),
    )
    await admin.create_user(MASTER, UserCreate(id="u", team_id="t"))
    body = KeyCreate(
        user_id="u",
        role=Role.MEMBER,
        models=["gpt-*"],
        metadata={"app": "x"},
        budget=BudgetIn(max_usd=Decimal(5), period="daily"),
        end_user_limits=LimitsIn(rpm=3),
    )
    key, secret = await admin.create_key(MASTER, body)
    return key.id, secret


async def test_resolve_builds_the_principal_from_key_and_team(controls: Any) -> None:
    control = await controls()
    assert control.has_keys is False
    key_id, secret = await _world(AccessAdmin(control))
    assert control.has_keys is True
    p = await control.resolve(secret)
    assert (p.key_id, p.role, p.user_id, p.team_id) == (key_id, Role.MEMBER, "u", "t")
    assert p.allowed_models == ("gpt-*",) and p.metadata == {"app": "x"}
    assert p.key.budget is not None and p.key.budget.max_usd == Decimal("5")
    assert p.key.budget.period == "daily"
    assert p.team.budget is not None and p.team.budget.max_usd == Decimal("100")
    assert p.team.limits.rpm == 60 and p.end_user.limits.rpm == 3
    await AccessAdmin(control).set_budget(MASTER, "t", BudgetSet())
    assert (await control.resolve(secret)).team.budget is None, "team changes reach the cache"


async def test_key_by_id_reads_key_and_team_in_one_query(controls: Any) -> None:
    """What the dashboard reads per request: the key and its team's policy, as `key_by_hash`
    finds them, in one statement; None for an unknown id, and no team once the team is gone."""
    control = await controls()
    admin, store = AccessAdmin(control), control.store
    key_id, _ = await _world(admin)
    statements: list[str] = []

    @event.listens_for(store._engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    found = await store.key_by_id(key_id)
    assert len(statements) == 1 and "teams" in statements[0]
    assert found is not None
    key, team, team_name = found
    assert (key.id, key.team_id, key.user_id, team_name) == (key_id, "t", "u", "T")
    assert team is not None and team.limits.rpm == 60
    assert team.budget is not None and team.budget.max_usd == Decimal(100)
    assert found == await store.key_by_hash(key.key_hash)
    assert await store.key_by_id("key_unknown") is None

    await admin.create_team(MASTER, TeamCreate(id="gone", name="Gone"))
    lone, _ = await admin.create_key(MASTER, KeyCreate(team_id="gone", role=Role.MEMBER))
    await admin.revoke_key(MASTER, lone.id)
    await admin.delete_team(MASTER, "gone")
    orphan = await store.key_by_id(lone.id)
    assert orphan is not None and orphan[0].team_id == "gone" and orphan[1:] == (None, None)


async def test_hot_path_reads_the_database_once_per_key(controls: Any) -> None:
    control = await controls()
    _, secret = await _world(AccessAdmin(control))
    reads = _count_key_reads(control)
    await asyncio.gather(*(control.resolve(secret) for _ in range(50)))
    for _ in range(100):
        await control.resolve(secret)
    assert len(reads) == 1, "one read, shared by concurrent misses, then the cache"
    unknown = generate_key()
    for _ in range(20):
        with pytest.raises(AuthenticationError):
            await control.resolve(unknown)
    assert len(reads) == 2, "unknown hashes are cached too (for less time)"


async def test_known_and_unknown_keys_do_the_same_work(
    controls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each path does one look-up and exactly one constant-time hash comparison."""
    control = await controls()
    _, secret = await _world(AccessAdmin(control))
    compares: list[tuple[str, str]] = []
    real = control_module.same_hash

    def spy(a: str, b: str) -> bool:
        compares.append((a, b))
        return real(a, b)

    monkeypatch.setattr(control_module, "same_hash", spy)
    reads = _count_key_reads(control)
    control.cache.clear()
    for attempt in ("cold", "warm"):
        for token in (secret, "og-" + "A" * 43):
            compares.clear()
            before = len(reads)
            with contextlib.suppress(AuthenticationError):
                await control.resolve(token)
            assert len(compares) == 1, (attempt, token)
            assert len(reads) - before == (1 if attempt == "cold" else 0), (attempt, token)


async def test_status_is_checked_on_every_request_even_when_cached(controls: Any) -> None:
    now = [time.time()]
    control = await controls(clock=lambda: now[0])
    admin = AccessAdmin(control)
    key, secret = await admin.create_key(MASTER, KeyCreate(expires_in=60))
    await control.resolve(secret)
    now[0] += 61
    with pytest.raises(AuthenticationError) as info:
        await control.resolve(secret)
    assert info.value.code == "expired_api_key"
    await admin.update_key(MASTER, key.id, KeyUpdate(expires_in=3600))
    await control.resolve(secret)


async def test_every_change_bumps_the_version(controls: Any) -> None:
    control = await controls()
    admin = AccessAdmin(control)
    versions = [await control.store.version()]
    key, _ = await admin.create_key(MASTER, KeyCreate())
    versions.append(await control.store.version())
    await admin.update_key(MASTER, key.id, KeyUpdate(alias="x"))
    versions.append(await control.store.version())
    await admin.revoke_key(MASTER, key.id)
    versions.append(await control.store.version())
    assert versions == sorted(set(versions)) and len(versions) == 4


async def _revoked_within(other: AccessService, secret: str, bound: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < bound:
        try:
            await other.resolve(secret)
        except AuthenticationError as exc:
            code = exc.code
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError(f"the other instance still accepts the key after {bound}s")
    assert code == "revoked_api_key"
    return time.monotonic() - start


async def test_revoke_reaches_another_instance_through_the_database(controls: Any) -> None:
    here, there = await controls(), await controls()
    key, secret = await AccessAdmin(here).create_key(MASTER, KeyCreate())
    await there.resolve(secret)  # cached there
    await AccessAdmin(here).revoke_key(MASTER, key.id)
    assert await _revoked_within(there, secret, bound=5.0) <= 1.0


async def _subscribed(*controls: AccessService) -> None:
    for _ in range(200):
        if all(c.feed.redis_healthy for c in controls):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never subscribed")


async def test_revoke_reaches_another_instance_through_redis_pubsub(
    controls: Any, redis_prefix: str
) -> None:
    # Polls slowed right down: only the published message can arrive in time.
    options = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    slow = {"poll_interval": 30.0, "backstop_interval": 60.0}
    here, there = await controls(**options), await controls(**options, **slow)
    await _subscribed(here, there)
    key, secret = await AccessAdmin(here).create_key(MASTER, KeyCreate())
    await there.resolve(secret)
    await AccessAdmin(here).revoke_key(MASTER, key.id)
    assert await _revoked_within(there, secret, bound=5.0) <= 0.3


async def test_a_missed_message_is_caught_by_the_redis_counter(
    controls: Any, redis_prefix: str
) -> None:
    import redis.asyncio as aioredis

    options = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    here = await controls(**options)
    there = await controls(**options, poll_interval=0.2, backstop_interval=60.0)
    await _subscribed(here, there)
    key, secret = await AccessAdmin(here).create_key(MASTER, KeyCreate())
    await there.resolve(secret)
    await here.store.update_key(key.id, {"revoked_at": time.time()})  # no publish...
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.incr(there.feed.counter)  # ...only the counter moved
    finally:
        await client.aclose()
    assert await _revoked_within(there, secret, bound=5.0) <= 1.0


async def test_a_replica_that_died_before_publishing_is_caught_by_the_database(
    controls: Any, redis_prefix: str
) -> None:
    options = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    here = await controls(**options)
    there = await controls(**options, poll_interval=30.0, backstop_interval=0.5)
    await _subscribed(here, there)
    key, secret = await AccessAdmin(here).create_key(MASTER, KeyCreate())
    await there.resolve(secret)
    await here.store.update_key(key.id, {"revoked_at": time.time()})  # committed, never announced
    assert await _revoked_within(there, secret, bound=5.0) <= 1.0


async def test_database_down_is_503_for_uncached_keys() -> None:
    engine = make_engine(f"postgresql://nobody@127.0.0.1:{dead_port()}/none")
    control = AccessService(engine)
    try:
        await control.start()  # does not raise: the gateway must start without its database
        assert control.has_keys is None
        with pytest.raises(AccessStoreUnavailableError) as info:
            await control.resolve(generate_key())
        assert info.value.status == 503
    finally:
        await control.aclose()
        await dispose_engine(engine)
