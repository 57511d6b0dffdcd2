"""The in-memory cache of resolved versions: what makes serving a prompt cost two dict look-ups.

Versions are immutable, so a parsed version (`Resolved`) stays until the cache is full; what a
label points at (and "no such prompt") is dropped on every change the feed reports, on this
replica and the others (prompts/service.py). A load that started before a change does not put
its (possibly stale) answer back: the generation it read under has moved on.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsgate.prompts.model import PromptVersion
from opsgate.prompts.template import Template

MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Resolved:
    """A version ready to serve: its record and its parsed message templates."""

    version: PromptVersion
    templates: tuple[Template, ...]

    @classmethod
    def of(cls, version: PromptVersion) -> Resolved:
        return cls(version, version.spec.compile())


LabelKey = tuple[str, str, str]
"""(team, name, label)."""
VersionKey = tuple[str, str, int]
"""(team, name, version)."""


class PromptCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.generation = 0
        self.labels: dict[LabelKey, int | None] = {}
        """Label → version number; None: the prompt or label does not exist."""
        self.versions: dict[VersionKey, Resolved | None] = {}
        """Version → the parsed version; None: no such version (yet)."""

    def label(self, key: LabelKey) -> int | bool | None:
        """The version a label points at, None if known missing, False if not cached."""
        return self.labels.get(key, False)

    def put_label(self, key: LabelKey, version: int | None, generation: int) -> None:
        if generation == self.generation:
            self._room(self.labels)
            self.labels[key] = version

    def put_version(self, key: VersionKey, resolved: Resolved | None, generation: int) -> None:
        if resolved is not None or generation == self.generation:
            self._room(self.versions)
            self.versions[key] = resolved

    def _room(self, table: dict[LabelKey, int | None] | dict[VersionKey, Resolved | None]) -> None:
        if len(table) >= self.max_entries:
            table.clear()

    def clear(self) -> None:
        """Forget labels and misses (a change may have made them wrong); keep parsed versions,
        which never change."""
        self.generation += 1
        self.labels.clear()
        for key in [k for k, v in self.versions.items() if v is None]:
            del self.versions[key]
