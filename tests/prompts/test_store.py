"""The registry on SQLite and PostgreSQL: versions (idempotent push), labels and their history,
rollback, diff, the team scope, the audit entry of each label move, and concurrent moves (last
writer wins, every move audited, label and history never disagree)."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from opsgate.access.principal import MASTER, Principal, Role
from opsgate.errors import BadRequestError, PermissionDeniedError
from opsgate.prompts.diff import changed_fields, side_by_side, unified
from opsgate.prompts.errors import PromptNotFoundError
from opsgate.prompts.model import NO_TEAM, PromptRef
from opsgate.prompts.service import LABEL_MOVE, PromptService, namespace
from opsgate.prompts.spec import PromptSpec
from tests.prompts.helpers import system_text

ADMIN = MASTER
MEMBER_A = Principal("key-m", Role.MEMBER, user_id="u", team_id="team-a")
LEAD_A = Principal("key-t", Role.TEAM_ADMIN, team_id="team-a")


def spec(version: int = 1) -> PromptSpec:
    return PromptSpec.model_validate(system_text(version))


async def push(service: PromptService, version: int, *labels: str, team: str = NO_TEAM) -> int:
    pushed = await service.push(
        ADMIN, team, "triage", spec(version), message=f"v{version}", actor="master", labels=labels
    )
    return pushed.version.version


async def moves_audited(service: PromptService) -> list[dict[str, object]]:
    assert service.audit is not None
    entries = await service.audit.entries(action=LABEL_MOVE, limit=1000)
    return [json.loads(e.detail) for e in reversed(entries)]


async def test_push_is_idempotent_and_versions_count_up(service: PromptService) -> None:
    first = await service.push(ADMIN, NO_TEAM, "triage", spec(1), message="one", actor="master")
    again = await service.push(ADMIN, NO_TEAM, "triage", spec(1), message="two", actor="master")
    assert (first.created, first.version.version) == (True, 1)
    assert (again.created, again.version.version) == (False, 1)
    assert again.version.message == "one"  # the version that holds this content
    second = await service.push(ADMIN, NO_TEAM, "triage", spec(2), message="b", actor="ci")
    assert (second.created, second.version.version, second.version.author) == (True, 2, "ci")
    back = await service.push(ADMIN, NO_TEAM, "triage", spec(1), message="revert", actor="ci")
    assert (back.created, back.version.version) == (True, 3)  # a revert is a change
    versions = await service.store.versions(NO_TEAM, "triage")
    assert [v.version for v in versions] == [3, 2, 1]
    assert versions[0].content_hash == versions[2].content_hash == spec(1).content_hash()
    assert versions[0].spec == spec(1)
    [info] = await service.store.list_prompts(NO_TEAM)
    assert (info.name, info.latest_version, info.description) == (
        "triage",
        3,
        "Routes a support ticket",
    )


async def test_labels_history_and_rollback(service: PromptService) -> None:
    await push(service, 1, "production")
    await push(service, 2, "staging")
    moved = await service.move(ADMIN, NO_TEAM, "triage", "production", 2, actor="master")
    assert (moved.from_version, moved.to_version) == (1, 2)
    resolved = await service.resolve(NO_TEAM, PromptRef("triage", "production"))
    assert resolved.version.version == 2
    back = await service.rollback(ADMIN, NO_TEAM, "triage", "production", actor="master")
    assert (back.from_version, back.to_version) == (2, 1)
    assert (await service.resolve(NO_TEAM, PromptRef("triage"))).version.version == 1
    labels = {s.label: s.version for s in await service.store.labels(NO_TEAM, "triage")}
    assert labels == {"production": 1, "staging": 2}
    history = await service.store.history(NO_TEAM, "triage", "production")
    assert [(m.from_version, m.to_version) for m in history] == [(2, 1), (1, 2), (None, 1)]
    audited = await moves_audited(service)
    assert [(d["label"], d["from_version"], d["to_version"], d["via"]) for d in audited] == [
        ("production", None, 1, "push"),
        ("staging", None, 2, "push"),
        ("production", 1, 2, "promote"),
        ("production", 2, 1, "rollback"),
    ]
    # A move to where the label already points changes nothing and records nothing.
    same = await service.move(ADMIN, NO_TEAM, "triage", "staging", 2, actor="master")
    assert not same.changed and len(await moves_audited(service)) == 4


async def test_unknown_prompts_versions_and_labels(service: PromptService) -> None:
    with pytest.raises(PromptNotFoundError):
        await service.resolve(NO_TEAM, PromptRef("nope"))
    await push(service, 1)
    with pytest.raises(PromptNotFoundError, match="no label 'production'"):
        await service.resolve(NO_TEAM, PromptRef("triage"))
    with pytest.raises(PromptNotFoundError, match="no version 5"):
        await service.resolve(NO_TEAM, PromptRef("triage", version=5))
    with pytest.raises(PromptNotFoundError, match="no version 9"):
        await service.move(ADMIN, NO_TEAM, "triage", "production", 9, actor="master")
    with pytest.raises(PromptNotFoundError):
        await service.move(ADMIN, NO_TEAM, "nope", "production", 1, actor="master")
    with pytest.raises(PromptNotFoundError):
        await service.rollback(ADMIN, NO_TEAM, "triage", "production", actor="master")
    await service.move(ADMIN, NO_TEAM, "triage", "production", 1, actor="master")
    with pytest.raises(BadRequestError, match="nothing to roll back"):
        await service.rollback(ADMIN, NO_TEAM, "triage", "production", actor="master")
    assert await service.store.history(NO_TEAM, "nope") == []


async def test_teams_have_their_own_prompts(service: PromptService) -> None:
    await push(service, 1, "production", team="team-a")
    await push(service, 7, "production", team="team-b")
    a = await service.resolve("team-a", PromptRef("triage"))
    b = await service.resolve("team-b", PromptRef("triage"))
    assert a.version.spec != b.version.spec
    with pytest.raises(PromptNotFoundError):
        await service.resolve(NO_TEAM, PromptRef("triage"))
    assert namespace(MEMBER_A) == "team-a"
    assert namespace(ADMIN, "team-b") == "team-b"
    with pytest.raises(PromptNotFoundError):  # another team's prompts do not exist for them
        namespace(MEMBER_A, "team-b")
    assert [p.team_id for p in await service.store.list_prompts(None)] == ["team-a", "team-b"]


async def test_production_needs_promote(service: PromptService) -> None:
    await push(service, 1, team="team-a")
    with pytest.raises(PermissionDeniedError, match="prompts:promote"):
        await service.move(MEMBER_A, "team-a", "triage", "production", 1, actor="key:key-m")
    with pytest.raises(PermissionDeniedError):
        await service.push(
            MEMBER_A, "team-a", "triage", spec(2), message=None, actor="k", labels=("production",)
        )
    assert [v.version for v in await service.store.versions("team-a", "triage")] == [1]
    staged = await service.move(MEMBER_A, "team-a", "triage", "staging", 1, actor="key:key-m")
    assert staged.to_version == 1
    promoted = await service.move(LEAD_A, "team-a", "triage", "production", 1, actor="key:key-t")
    assert promoted.to_version == 1
    assert [d["label"] for d in await moves_audited(service)] == ["staging", "production"]


async def test_concurrent_moves_last_writer_wins_and_all_are_audited(
    service: PromptService,
) -> None:
    for version in range(1, 6):
        await push(service, version)
    await service.move(ADMIN, NO_TEAM, "triage", "production", 1, actor="master")
    targets = [2, 3, 4, 5, 2, 3, 4, 5]
    await asyncio.gather(
        *(
            service.move(ADMIN, NO_TEAM, "triage", "production", v, actor=f"writer-{i}")
            for i, v in enumerate(targets)
        )
    )
    history = list(reversed(await service.store.history(NO_TEAM, "triage", "production")))
    changed = list(history)
    # Never torn: each move starts where the one before it ended, and the label is the last one.
    for before, after in itertools.pairwise(changed):
        assert after.from_version == before.to_version
    [label] = await service.store.labels(NO_TEAM, "triage")
    assert label.version == changed[-1].to_version
    audited = await moves_audited(service)
    assert [(d["from_version"], d["to_version"]) for d in audited] == [
        (m.from_version, m.to_version) for m in changed
    ]
    assert changed[0].to_version == 1 and len(changed) > 1


async def test_diff_of_two_versions(service: PromptService) -> None:
    await push(service, 1)
    await service.push(
        ADMIN,
        NO_TEAM,
        "triage",
        PromptSpec.model_validate({**system_text(2), "params": {"temperature": 0.5}}),
        message=None,
        actor="master",
    )
    old, new = (
        await service.store.get(NO_TEAM, "triage", 1),
        await service.store.get(NO_TEAM, "triage", 2),
    )
    assert old is not None and new is not None
    assert changed_fields(old, new) == ["messages", "params"]
    text = unified(old, new)
    assert "--- triage@1" in text and "+++ triage@2" in text
    assert "-    [v1] You triage" in text and "+    [v2] You triage" in text
    assert "-  temperature: 0.2" in text and "+  temperature: 0.5" in text
    rows = side_by_side(old, new)
    changed = [r for r in rows if r.tag != "equal"]
    assert any(r.left and "[v1]" in r.left and r.right and "[v2]" in r.right for r in changed)
    assert side_by_side(old, old) == [r for r in side_by_side(old, old) if r.tag == "equal"]


async def test_the_change_counter_moves_with_every_change(service: PromptService) -> None:
    start = await service.store.version()
    await push(service, 1)
    after_push = await service.store.version()
    await push(service, 1)  # unchanged: no change
    assert await service.store.version() == after_push > start
    await service.move(ADMIN, NO_TEAM, "triage", "production", 1, actor="master")
    assert await service.store.version() == after_push + 1


async def test_the_cache_serves_labels_until_a_change(service: PromptService) -> None:
    await push(service, 1, "production")
    await push(service, 2)
    first = await service.resolve(NO_TEAM, PromptRef("triage"))
    assert ("", "triage", "production") in service.cache.labels
    # Another replica moves the label: this one serves from its cache until the feed says so.
    await service.store.move_label(NO_TEAM, "triage", "production", 2, "elsewhere")
    assert (await service.resolve(NO_TEAM, PromptRef("triage"))).version.version == 1
    await service._on_change()  # what the change feed calls
    assert (await service.resolve(NO_TEAM, PromptRef("triage"))).version.version == 2
    assert first.version.version == 1
