"""Dataset versions on SQLite and PostgreSQL: every change is a new version and every old one
stays readable; changes to one dataset take turns (a dead change's lease is taken over and its
leftovers removed); rows are sealed at rest; erasure takes an end user's rows out of every
version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from opsgate.access.principal import MASTER, Principal, Role
from opsgate.audit import AuditLog
from opsgate.config.feedback import MetricConfig
from opsgate.errors import OpsgateError
from opsgate.feedback import SqlScoreStore
from opsgate.feedback.datasets.changes import DatasetBusyError
from opsgate.feedback.datasets.export import export_redactor
from opsgate.feedback.datasets.holder import DatasetRows
from opsgate.feedback.datasets.requests import DatasetCreate, DatasetRemove, RowSources
from opsgate.feedback.datasets.rows import unseal
from opsgate.feedback.datasets.service import DatasetService
from opsgate.feedback.datasets.store import DatasetStore
from opsgate.store import dispose_engine, make_engine
from opsgate.store.crypto import BodyCipher, Keyring
from tests.store.conftest import Backend, backend, empty_backend  # noqa: F401

CIPHER = BodyCipher(Keyring.generate())


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def service(backend: Backend) -> AsyncIterator[tuple[DatasetService, Clock]]:  # noqa: F811
    engine = make_engine(backend.url)
    clock = Clock()
    metrics = {"thumbs": MetricConfig(type="boolean")}
    try:
        yield (
            DatasetService(
                engine,
                SqlScoreStore(engine),
                AuditLog(engine),
                cipher=lambda: CIPHER,
                redactor=lambda: export_redactor(None),
                metrics=lambda: metrics,
                stores_bodies=lambda: True,
                clock=clock,
            ),
            clock,
        )
    finally:
        await dispose_engine(engine)


def row(question: str, answer: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}], "output": answer, **extra}


async def _questions(service: DatasetService, version: int | None = None) -> list[str]:
    _, _, rows = await service.rows(
        MASTER, "qa", version=version, after=None, limit=100, content=True, actor="test"
    )
    return [content.messages[0]["content"] for _, content in rows if content is not None]


async def test_every_change_is_a_version_and_old_versions_stay_readable(
    service: tuple[DatasetService, Clock],
) -> None:
    datasets, clock = service
    made = await datasets.create(
        MASTER, DatasetCreate(name="qa", rows=[row("a?", "A"), row("b?", "B")]), "test"
    )
    assert (made.version, made.added) == (1, 2)
    clock.now += 1
    added = await datasets.add(MASTER, "qa", RowSources(rows=[row("c?", "C")]), "test")
    assert (added.version, added.added) == (2, 1)
    _, _, rows = await datasets.rows(
        MASTER, "qa", version=None, after=None, limit=10, content=False, actor="test"
    )
    first = rows[0][0]
    removed = await datasets.remove(MASTER, "qa", DatasetRemove(row_ids=[first.id]), "test")
    assert (removed.version, removed.removed) == (3, 1)
    nothing = await datasets.remove(MASTER, "qa", DatasetRemove(row_ids=[first.id]), "test")
    assert nothing.version == 3 and nothing.removed == 0  # no change, no version

    assert await _questions(datasets, 1) == ["a?", "b?"]
    assert await _questions(datasets, 2) == ["a?", "b?", "c?"]
    assert await _questions(datasets) == ["b?", "c?"]
    info, count, versions = await datasets.show(MASTER, "qa")
    assert (info.version, count) == (3, 2)
    assert [(v.version, v.change, v.added, v.removed) for v in versions] == [
        (1, "create", 2, 0),
        (2, "add", 1, 0),
        (3, "remove", 0, 1),
    ]
    with pytest.raises(OpsgateError) as missing:
        await _questions(datasets, 4)
    assert missing.value.status == 404

    # At rest the content is sealed under the row's own id: not readable, not movable.
    stored = rows[1][0]
    assert b'"messages"' not in stored.body and b'"output"' not in stored.body
    assert unseal(CIPHER, stored.id, stored.body).messages[0]["content"] == "b?"
    with pytest.raises(Exception, match="does not decrypt"):
        unseal(CIPHER, first.id, stored.body)


async def test_changes_take_turns_and_a_dead_change_is_taken_over(
    service: tuple[DatasetService, Clock],
) -> None:
    datasets, clock = service
    await datasets.create(MASTER, DatasetCreate(name="qa", rows=[row("a?", "A")]), "test")
    store: DatasetStore = datasets.store
    info = await datasets.resolve(MASTER, "qa")
    dead = await store.begin(info.id, clock.now)
    await store.remove_rows(dead, clock.now, row_ids=[(await store.page(info.id, 1))[0].id])
    with pytest.raises(DatasetBusyError):
        await datasets.add(MASTER, "qa", RowSources(rows=[row("b?", "B")]), "test")
    clock.now += 10_000  # the dead change's lease ran out
    taken = await datasets.add(MASTER, "qa", RowSources(rows=[row("b?", "B")]), "test")
    assert taken.version == 2
    assert await _questions(datasets) == ["a?", "b?"]  # its removal was undone, not applied
    with pytest.raises(DatasetBusyError):
        await store.commit(dead, "remove", {}, 0, 1, "test", clock.now)


async def test_scope_names_and_erasure(service: tuple[DatasetService, Clock]) -> None:
    datasets, _ = service
    lead_a = Principal("k-a", Role.TEAM_ADMIN, team_id="team-a")
    lead_b = Principal("k-b", Role.TEAM_ADMIN, team_id="team-b")
    rows = [row("mine?", "yes", end_user="ada"), row("theirs?", "no", end_user="bob")]
    await datasets.create(lead_a, DatasetCreate(name="qa", rows=rows), "test")
    await datasets.create(lead_b, DatasetCreate(name="qa", rows=[row("b?", "B")]), "test")
    with pytest.raises(OpsgateError) as clash:
        await datasets.create(lead_a, DatasetCreate(name="qa"), "test")
    assert clash.value.status == 409
    with pytest.raises(OpsgateError) as ambiguous:
        await datasets.resolve(MASTER, "qa")  # two teams use the name: the id is needed
    assert ambiguous.value.status == 409
    mine = await datasets.resolve(lead_a, "qa")
    with pytest.raises(OpsgateError) as hidden:
        await datasets.resolve(lead_b, mine.id)
    assert hidden.value.status == 404
    with pytest.raises(OpsgateError) as outside:
        await datasets.create(lead_b, DatasetCreate(name="x", team_id="team-a"), "test")
    assert outside.value.status == 403

    await datasets.add(lead_a, "qa", RowSources(rows=[row("again?", "yes", end_user="ada")]), "t")
    holder = DatasetRows(datasets.store.engine, lambda: CIPHER)
    exported = await holder.export("ada")
    assert sorted(r["content"]["messages"][0]["content"] for r in exported) == ["again?", "mine?"]
    assert await holder.erase("ada") == {"dataset_rows": 2}
    assert await holder.export("ada") == []
    _, _, v1 = await datasets.rows(
        lead_a, "qa", version=1, after=None, limit=10, content=True, actor="t"
    )
    assert [c.messages[0]["content"] for _, c in v1 if c] == ["theirs?"]
