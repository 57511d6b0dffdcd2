"""`PromptStore`: what the registry needs from a database; `SqlPromptStore` (prompts/sql.py) is
the one backend, on SQLite and PostgreSQL alike.

Every method takes the team namespace explicitly (`NO_TEAM` for prompts of no team): scoping
is the caller's job (prompts/service.py), and a prompt of another team is simply not found.
Every change (a new version, a label move) bumps the change counter in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from opsgate.prompts.model import LabelMove, LabelState, PromptInfo, PromptVersion
from opsgate.prompts.spec import PromptSpec


@dataclass(frozen=True, slots=True)
class Pushed:
    """The answer to a push: the version now latest, whether it is new, and label moves."""

    version: PromptVersion
    created: bool
    moves: tuple[LabelMove, ...] = ()


class PromptStore(Protocol):
    async def version(self) -> int:
        """The change counter (replicas compare it to know when to drop what they cached)."""
        ...

    async def push(
        self,
        team_id: str,
        name: str,
        spec: PromptSpec,
        *,
        message: str | None,
        author: str | None,
        labels: tuple[str, ...] = (),
    ) -> Pushed:
        """Add a version unless the latest one has the same content hash; point `labels` at
        the result. One transaction."""
        ...

    async def get(self, team_id: str, name: str, version: int) -> PromptVersion | None: ...

    async def by_label(self, team_id: str, name: str, label: str) -> PromptVersion | None: ...

    async def find(self, team_id: str, name: str) -> PromptInfo | None: ...

    async def list_prompts(self, team_id: str | None) -> list[PromptInfo]:
        """Prompts of one team, or of every team with None."""
        ...

    async def versions(self, team_id: str, name: str) -> list[PromptVersion]:
        """Newest first."""
        ...

    async def labels(self, team_id: str, name: str) -> list[LabelState]: ...

    async def move_label(
        self, team_id: str, name: str, label: str, version: int, actor: str | None
    ) -> LabelMove:
        """Point `label` at `version` (which must exist) and append to its history, in one
        transaction serialised per prompt: concurrent moves each see the previous one's result
        (last writer wins, and every move's `from_version` is true)."""
        ...

    async def history(self, team_id: str, name: str, label: str | None = None) -> list[LabelMove]:
        """Newest first."""
        ...
