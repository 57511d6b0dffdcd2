"""A name or id that is taken is a 409 that says which, in words, never the database's own
(`UNIQUE constraint failed: teams.name`, `duplicate key value violates ...`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from opsgate.access.control import AccessService
from opsgate.access.errors import ConflictError
from opsgate.access.manage import AccessAdmin
from opsgate.access.models import TeamCreate, TeamUpdate, UserCreate
from opsgate.access.principal import MASTER
from opsgate.store import dispose_engine, make_engine
from opsgate.store.migrate import upgrade

SQL_WORDS = ("UNIQUE", "constraint", "duplicate key", "teams.", "users.", "pk_", "uq_")


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[AccessAdmin]:
    await upgrade(database_url)
    engine = make_engine(database_url)
    control = AccessService(engine)
    await control.start()
    try:
        yield AccessAdmin(control)
    finally:
        await control.aclose()
        await dispose_engine(engine)


def _said(exc: pytest.ExceptionInfo[ConflictError]) -> str:
    message = str(exc.value)
    assert exc.value.status == 409
    assert not any(word in message for word in SQL_WORDS), message
    return message


async def test_a_duplicate_team_name_says_a_team_by_that_name_exists(admin: AccessAdmin) -> None:
    await admin.create_team(MASTER, TeamCreate(id="ml", name="ML platform"))
    with pytest.raises(ConflictError) as named:
        await admin.create_team(MASTER, TeamCreate(name="ML platform"))
    assert _said(named) == "a team named 'ML platform' already exists"
    assert (named.value.code, named.value.param) == ("team_exists", "name")
    with pytest.raises(ConflictError) as same_id:
        await admin.create_team(MASTER, TeamCreate(id="ml", name="Other"))
    assert _said(same_id) == "a team with id 'ml' already exists"
    await admin.create_team(MASTER, TeamCreate(id="web", name="Web"))
    with pytest.raises(ConflictError) as renamed:
        await admin.update_team(MASTER, "web", TeamUpdate(name="ML platform"))
    assert _said(renamed) == "a team named 'ML platform' already exists"
    assert [t.name for t in await admin.list_teams(MASTER)] == ["ML platform", "Web"]


async def test_a_duplicate_user_id_says_so(admin: AccessAdmin) -> None:
    await admin.create_user(MASTER, UserCreate(id="ada"))
    with pytest.raises(ConflictError) as taken:
        await admin.create_user(MASTER, UserCreate(id="ada", name="Ada again"))
    assert _said(taken) == "a user with id 'ada' already exists"
