"""The audit log on SQLite and PostgreSQL: appends chain, verify finds the first broken link,
and writers in separate "replicas" (own engines) keep one linear chain."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.audit import Anchor, AuditLog, pseudonym
from opsgate.audit.chain import GENESIS, entry_hash
from opsgate.store import dispose_engine, make_engine
from opsgate.store.tables.audit import audit_log
from tests.store.conftest import Backend


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(backend.url)
    try:
        yield engine
    finally:
        await dispose_engine(engine)


async def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        await log.append("key:k1", "keys.create", f"/admin/v1/keys/{i}", {"status": 201, "i": i})


async def test_appends_form_a_chain_that_verifies(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    assert (await log.verify()).ok and (await log.verify()).checked == 0
    first = await log.append("master", "config.reload", "/admin/v1/config/reload", None)
    assert first.seq == 1 and first.prev_hash == GENESIS
    await _fill(log, 4)
    head = await log.head()
    assert head is not None and head.seq == 5
    result = await log.verify(page=2)  # several pages
    assert result.ok and result.checked == 5 and result.head_hash == head.hash
    async with engine.connect() as conn:
        rows = (await conn.execute(select(audit_log).order_by(audit_log.c.seq))).all()
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    stored = rows[2]
    assert json.loads(stored.detail) == {"i": 1, "status": 201}
    recomputed = entry_hash(
        stored.prev_hash, 3, stored.at, "key:k1", "keys.create", "/admin/v1/keys/1", stored.detail
    )
    assert recomputed == stored.hash


async def test_text_is_stored_as_hashed_even_with_nul_and_unicode(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    await log.append("key:\x00k", "keys.update", "/admin/v1/teams/équipe-東京", {"x": "\x00é"})
    assert (await log.verify()).ok


async def test_an_altered_entry_is_the_first_broken_link(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    await _fill(log, 6)
    async with engine.begin() as conn:
        await conn.execute(
            update(audit_log).where(audit_log.c.seq == 4).values(detail='{"status":200}')
        )
    result = await log.verify()
    assert not result.ok and result.first_broken_seq == 4 and result.checked == 3
    assert "altered" in (result.reason or "")


async def test_a_deleted_entry_is_found(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    await _fill(log, 5)
    async with engine.begin() as conn:
        await conn.execute(delete(audit_log).where(audit_log.c.seq == 2))
    result = await log.verify()
    assert not result.ok and result.first_broken_seq == 2 and "missing" in (result.reason or "")


async def test_a_rewritten_chain_tail_still_breaks_at_the_change(engine: AsyncEngine) -> None:
    """Recomputing the altered entry's own hash is not enough: the next link no longer holds."""
    log = AuditLog(engine)
    await _fill(log, 4)
    async with engine.begin() as conn:
        row = (await conn.execute(select(audit_log).where(audit_log.c.seq == 2))).one()
        forged = entry_hash(row.prev_hash, 2, row.at, "master", row.action, row.target, row.detail)
        await conn.execute(
            update(audit_log).where(audit_log.c.seq == 2).values(actor="master", hash=forged)
        )
    result = await log.verify()
    assert not result.ok and result.first_broken_seq == 3
    assert "prev_hash" in (result.reason or "")


async def test_an_anchor_finds_a_cut_off_tail_and_a_rewritten_chain(engine: AsyncEngine) -> None:
    """Deleting the newest entries leaves every link intact: only a copy of a later head kept
    elsewhere shows it. Rewriting the whole chain consistently is caught the same way."""
    log = AuditLog(engine)
    await _fill(log, 6)
    kept = await log.verify()
    assert kept.ok and kept.head is not None and kept.head.startswith("6:")
    anchor = Anchor.parse(kept.head)
    assert (await log.verify(anchor=anchor)).ok
    async with engine.begin() as conn:
        await conn.execute(delete(audit_log).where(audit_log.c.seq >= 5))
    assert (await log.verify()).ok, "the links alone cannot show a deleted tail"
    cut = await log.verify(anchor=anchor)
    assert not cut.ok and cut.first_broken_seq == 5 and "cut off" in (cut.reason or "")
    assert cut.checked == 4 and cut.head == f"4:{cut.head_hash}"

    async with engine.begin() as conn:  # rewrite the whole log, correctly chained
        await conn.execute(delete(audit_log).where(audit_log.c.seq >= 1))
    await _fill(log, 6)  # same fields, other times: other hashes
    rewritten = await log.verify(anchor=anchor)
    assert not rewritten.ok and rewritten.first_broken_seq == 6
    assert "rewritten" in (rewritten.reason or "")


@pytest.mark.parametrize("bad", ["6", "0:" + "a" * 64, "x:" + "a" * 64, "6:abc", "6:" + "g" * 64])
def test_a_malformed_anchor_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="SEQ:HASH"):
        Anchor.parse(bad)


async def test_replicas_appending_at_once_keep_one_linear_chain(backend: Backend) -> None:
    engines = [make_engine(backend.url) for _ in range(3)]
    try:
        logs = [AuditLog(e) for e in engines]
        await asyncio.gather(*(_fill(log, 15) for log in logs))
        result = await logs[0].verify()
        assert result.ok and result.checked == 45
        async with engines[0].connect() as conn:
            seqs = (await conn.execute(select(audit_log.c.seq).order_by(audit_log.c.seq))).all()
        assert [s for (s,) in seqs] == list(range(1, 46))
    finally:
        for e in engines:
            await dispose_engine(e)


async def test_entries_page_newest_first(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    await _fill(log, 5)
    await log.append("master", "config.reload", "/admin/v1/config/reload")
    page = await log.entries(limit=2)
    assert [e.seq for e in page] == [6, 5]
    assert [e.seq for e in await log.entries(limit=10, before=3)] == [2, 1]
    assert [e.seq for e in await log.entries(action="config.reload")] == [6]
    assert [e.seq for e in await log.entries(actor="master")] == [6]


def test_pseudonyms_are_stable_and_do_not_contain_the_id() -> None:
    assert pseudonym("end_user", "alice@example.com") == pseudonym("end_user", "alice@example.com")
    assert "alice" not in pseudonym("end_user", "alice@example.com")
    assert pseudonym("end_user", "a") != pseudonym("end_user", "b")
