"""Claims under concurrency, on SQLite and PostgreSQL: many reviewers on two "replicas" (each its
own engine and connection pool) claim from one queue at once, and no item ever goes to two of
them; a lease that runs out frees its item; of two racing labels on one item, one wins."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.compliance.holders_sql import TraceData
from opsgate.feedback.review.rules import QueueCreate
from opsgate.feedback.review.store import QueueStore
from opsgate.store import SqlTraceStore, dispose_engine, make_engine
from tests.store.conftest import Backend, backend, empty_backend, make_trace  # noqa: F401

ITEMS = 120
REVIEWERS_PER_REPLICA = 6


async def _queue(engine: AsyncEngine, items: int) -> tuple[QueueStore, str]:
    traces = [make_trace(n) for n in range(items)]
    await SqlTraceStore(engine).write_batch(traces)
    store = QueueStore(engine)
    await store.create("rq_race", QueueCreate(name="race"), None, 0.0, "test", 1.0)
    added = await store.add_items("rq_race", [(t.trace_id, t.started_at) for t in traces], 1.0)
    assert added == items
    return store, "rq_race"


async def test_two_replicas_of_reviewers_never_share_an_item(backend: Backend) -> None:  # noqa: F811
    engines = [make_engine(backend.url), make_engine(backend.url)]
    try:
        await _queue(engines[0], ITEMS)
        replicas = [QueueStore(e) for e in engines]
        claims: list[tuple[str, str]] = []

        async def reviewer(store: QueueStore, name: str) -> None:
            while True:
                item = await store.claim("rq_race", name, 100.0, 600.0)
                if item is None:
                    return
                claims.append((name, item.trace_id))
                assert item.assigned_to == name
                # Half of them label at once, half keep holding (a claimer must skip both).
                if len(claims) % 2:
                    assert await store.finish("rq_race", item.trace_id, name, 100.0) is not None

        await asyncio.gather(
            *(
                reviewer(store, f"r{r}-{n}")
                for r, store in enumerate(replicas)
                for n in range(REVIEWERS_PER_REPLICA)
            )
        )
        per_item = Counter(trace_id for _, trace_id in claims)
        assert len(per_item) == ITEMS, "every item was claimed"
        assert set(per_item.values()) == {1}, "no item went to two reviewers"
        assert len({name for name, _ in claims}) > 1, "the work was shared"
        progress = await replicas[1].progress("rq_race", 100.0)
        assert progress.total == ITEMS and progress.done + progress.in_progress == ITEMS
    finally:
        for engine in engines:
            await dispose_engine(engine)


async def test_a_lapsed_lease_frees_the_item_and_one_of_two_labels_wins(
    backend: Backend,  # noqa: F811
) -> None:
    engines = [make_engine(backend.url), make_engine(backend.url)]
    try:
        store, queue = await _queue(engines[0], 2)
        other = QueueStore(engines[1])
        first = await store.claim(queue, "ann", 100.0, 10.0)
        assert first is not None
        # Within the lease nobody else gets it; ann asking again is a held item, not a claim.
        second = await other.claim(queue, "bob", 105.0, 10.0)
        assert second is not None and second.trace_id != first.trace_id
        assert await other.claim(queue, "cy", 105.0, 10.0) is None
        assert (await store.held(queue, "ann", 105.0)) == await store.item(queue, first.trace_id)
        # Past it, the next claimer takes it over and ann's late label is refused.
        taken = await other.claim(queue, "cy", 111.0, 10.0)
        assert taken is not None and taken.trace_id == first.trace_id
        assert await store.finish(queue, first.trace_id, "ann", 112.0) is None
        # cy and bob race to label cy's item: exactly one label lands.
        results = await asyncio.gather(
            store.finish(queue, first.trace_id, "cy", 112.0),
            other.finish(queue, first.trace_id, "bob", 112.0),
        )
        assert sum(r is not None for r in results) == 1
        done = await store.item(queue, first.trace_id)
        assert done is not None and done.state == "done" and done.done_by == "cy"
    finally:
        for engine in engines:
            await dispose_engine(engine)


async def test_items_go_with_their_traces(backend: Backend) -> None:  # noqa: F811
    """Erasure (and retention) delete traces; their queue items and actions follow (cascade)."""
    engine = make_engine(backend.url)
    try:
        store, queue = await _queue(engine, 12)
        item = await store.claim(queue, "ann", 100.0, 600.0)
        assert item is not None
        await store.skip(queue, item.trace_id, "ann", 100.0)
        gone = await TraceData(engine, lambda: None).erase("user-0")  # traces 0 and 6
        assert gone["traces"] == 2
        left = {i.trace_id for i in await store.items(queue, None, None, 100)}
        assert left == {make_trace(n).trace_id for n in range(12) if n % 6}
        assert (await store.progress(queue, 100.0)).total == 10
    finally:
        await dispose_engine(engine)
