"""Listing traces on SQLite, PostgreSQL and the memory store: filters, cursors, metadata."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from opsgate.store import (
    InvalidCursorError,
    MemoryTraceStore,
    SqlTraceStore,
    TraceQuery,
    TraceRecord,
    TraceStore,
)
from opsgate.store.queries import MAX_LIMIT, encode_cursor
from tests.store.conftest import make_trace

T0 = 1_700_000_000.0


def _data() -> list[TraceRecord]:
    records = []
    for i in range(60):
        extra: dict[str, object] = {"request_body": b"{}", "response_body": b"hi"}
        if i % 5 == 0:
            extra["session_id"] = f"sess-{i % 2}"
        records.append(make_trace(i, **extra))
    return records


def _newest_first(records: list[TraceRecord]) -> list[str]:
    ordered = sorted(records, key=lambda r: (r.started_at, r.trace_id), reverse=True)
    return [r.trace_id for r in ordered]


async def _all_ids(store: TraceStore, query: TraceQuery) -> list[str]:
    """Every page of `query`, concatenated."""
    ids: list[str] = []
    while True:
        page = await store.list_traces(query)
        ids.extend(r.trace_id for r in page.items)
        assert len(page.items) <= query.limit
        if page.next_cursor is None:
            return ids
        assert len(page.items) == query.limit
        query = dataclasses.replace(query, cursor=page.next_cursor)


@pytest.fixture
async def stores(sql_store: SqlTraceStore) -> list[TraceStore]:
    """The SQL store (SQLite or PostgreSQL) and the memory store, holding the same traces."""
    memory = MemoryTraceStore()
    for store in (sql_store, memory):
        await store.write_batch(_data())
    return [sql_store, memory]


FILTERS: list[tuple[dict[str, object], Callable[[TraceRecord], bool]]] = [
    ({}, lambda r: True),
    ({"since": T0 + 3600}, lambda r: r.started_at >= T0 + 3600),
    ({"until": T0 + 3600}, lambda r: r.started_at < T0 + 3600),
    (
        {"since": T0 + 61.5, "until": T0 + 3600 + 123},
        lambda r: T0 + 61.5 <= r.started_at < T0 + 3600 + 123,
    ),
    ({"model": "claude-3-haiku"}, lambda r: r.model_requested == "claude-3-haiku"),
    ({"deployment": "openai-1"}, lambda r: r.deployment == "openai-1"),
    ({"key_id": "key-2"}, lambda r: r.key_id == "key-2"),
    ({"team_id": "team-1"}, lambda r: r.team_id == "team-1"),
    ({"end_user": "user-5"}, lambda r: r.end_user == "user-5"),
    ({"session_id": "sess-0"}, lambda r: r.session_id == "sess-0"),
    ({"status": "error"}, lambda r: r.status == "error"),
    ({"status": "ok"}, lambda r: r.status == "ok"),
    ({"cache": "miss"}, lambda r: r.cache == "miss"),
    ({"cache": "hit-exact"}, lambda r: r.cache == "hit-exact"),
    ({"cache": "hit"}, lambda r: r.cache in ("hit-exact", "hit-semantic")),
    ({"min_duration_ms": 2000}, lambda r: r.duration_ms >= 2000),
    ({"min_duration_ms": 42.25}, lambda r: r.duration_ms >= 42.25),  # inclusive
    ({"metadata": (("n", "7"),)}, lambda r: r.metadata.get("n") == "7"),
    ({"metadata": (("env", "test"),)}, lambda r: True),
    ({"metadata": (("env", "prod"),)}, lambda r: False),
    ({"metadata": (("env", "test"), ("n", "8"))}, lambda r: r.metadata.get("n") == "8"),
    ({"metadata": (("n", "8"), ("n", "9"))}, lambda r: False),
    (
        {"model": "gpt-4o-mini", "status": "ok", "key_id": "key-1", "since": T0 + 100},
        lambda r: (
            r.model_requested == "gpt-4o-mini"
            and r.status == "ok"
            and r.key_id == "key-1"
            and r.started_at >= T0 + 100
        ),
    ),
]


@pytest.mark.parametrize(("filters", "expected"), FILTERS, ids=[repr(f) for f, _ in FILTERS])
async def test_each_filter(
    stores: list[TraceStore],
    filters: dict[str, object],
    expected: Callable[[TraceRecord], bool],
) -> None:
    want = _newest_first([r for r in _data() if expected(r)])
    for store in stores:
        assert await _all_ids(store, TraceQuery(**filters, limit=1000)) == want  # type: ignore[arg-type]
        assert await _all_ids(store, TraceQuery(**filters, limit=4)) == want  # type: ignore[arg-type]


async def test_listing_returns_summaries_without_bodies(stores: list[TraceStore]) -> None:
    for store in stores:
        page = await store.list_traces(TraceQuery(limit=3))
        assert len(page.items) == 3
        for item in page.items:
            assert item.request_body is None and item.response_body is None
            assert item.spans == []
            full = await store.get(item.trace_id)
            assert full is not None and full.request_body == b"{}" and len(full.spans) == 2
            assert dataclasses.replace(full, request_body=None, response_body=None, spans=[]) == (
                item
            )


async def test_pagination_over_colliding_timestamps(sql_store: SqlTraceStore) -> None:
    memory = MemoryTraceStore()
    # 120 traces on only 9 distinct timestamps: the trace_id tie-break decides most pages.
    records = [make_trace(i, started_at=T0 + (i * 7) % 9, spans=[]) for i in range(120)]
    want = _newest_first(records)
    for store in (sql_store, memory):
        await store.write_batch(records)
        for limit in (1, 7, 13, 40, 119, 120, 121):
            got = await _all_ids(store, TraceQuery(limit=limit))
            assert got == want, f"limit {limit}"
            assert len(set(got)) == 120


async def test_new_traces_do_not_shift_later_pages(sql_store: SqlTraceStore) -> None:
    old = [make_trace(i, started_at=T0 + i % 5, spans=[]) for i in range(30)]
    await sql_store.write_batch(old)
    first = await sql_store.list_traces(TraceQuery(limit=10))
    assert first.next_cursor is not None
    # Newer traces and one at a colliding timestamp with a larger id arrive between pages.
    newer = [make_trace(100 + i, started_at=T0 + 100 + i, spans=[]) for i in range(5)]
    await sql_store.write_batch([*newer, make_trace(999, started_at=T0 + 4, spans=[])])
    rest = await _all_ids(sql_store, TraceQuery(limit=10, cursor=first.next_cursor))
    seen = [r.trace_id for r in first.items] + rest
    assert len(seen) == len(set(seen)) == 30, "no gaps, no duplicates"
    assert seen == _newest_first(old)


async def test_metadata_keys_with_quotes_dots_and_unicode(sql_store: SqlTraceStore) -> None:
    odd = {'say "hi"': "yes", "a.b": "dotted", "żółw": "🐢", "$[0]": "x", "'); --": "y"}
    await sql_store.write_batch(
        [make_trace(1, metadata={**odd, "n": "1"}), make_trace(2, metadata={"a": "b", "n": "1"})]
    )
    for key, value in odd.items():
        page = await sql_store.list_traces(TraceQuery(metadata=((key, value),)))
        assert [r.trace_id for r in page.items] == ["tr-000001"], key
        page = await sql_store.list_traces(TraceQuery(metadata=((key, value + "!"),)))
        assert page.items == [], key
    page = await sql_store.list_traces(TraceQuery(metadata=(("n", "1"),)))
    assert {r.trace_id for r in page.items} == {"tr-000001", "tr-000002"}
    page = await sql_store.list_traces(TraceQuery(metadata=(("missing", ""),)))
    assert page.items == []


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "bm90IGpzb24",  # "not json"
        encode_cursor(1.0, "x")[:-2],
        "WzEsMl0",  # [1,2]
        "WyJhIiwiYiJd",  # ["a","b"]
        "W3RydWUsImIiXQ",  # [true,"b"]
        "ëé",
    ],
)
def test_invalid_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        TraceQuery(cursor=cursor)


@pytest.mark.parametrize(
    "bad",
    [{"limit": 0}, {"limit": MAX_LIMIT + 1}, {"status": "weird"}, {"cache": "hot"}],
)
def test_invalid_queries_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        TraceQuery(**bad)  # type: ignore[arg-type]


async def test_empty_store_and_store_down() -> None:
    memory = MemoryTraceStore()
    page = await memory.list_traces(TraceQuery())
    assert page.items == [] and page.next_cursor is None
    memory.down = True
    from opsgate.store import StoreUnavailableError

    with pytest.raises(StoreUnavailableError):
        await memory.list_traces(TraceQuery())
