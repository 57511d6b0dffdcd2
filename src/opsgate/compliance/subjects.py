"""Data subject rights by end user: export everything kept about them, or erase it.

Each place that keeps data about end users registers a `PersonalData` holder; the built-ins
(the erasure tombstone, traces with spans and bodies, every table with an `end_user` column,
budget alerts, the trace journal, the cache) register the same way later parts (feedback,
datasets) will. Export and erasure ask every holder; erasure answers with a receipt counting
what went, per table or store.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from opsgate.errors import OpsgateError, ServiceUnavailableError
from opsgate.identity import check_end_user


class ErasureFailedError(ServiceUnavailableError):
    """Erasure stopped part-way (a holder's store failed); what went is gone, the rest is not.
    Erasure is idempotent, so the answer is: fix the cause and erase again."""

    default_code = "erasure_failed"


class PersonalData(Protocol):
    """Something that keeps data about end users and can hand it over or forget it."""

    name: str
    """The section of an export this holder fills (e.g. `traces`)."""

    async def export(self, end_user: str) -> Any:
        """Everything this holder keeps about `end_user`, as JSON data (None or [] when none)."""
        ...

    async def erase(self, end_user: str) -> dict[str, int]:
        """Remove it all; return how many items went, per table or store (e.g. `spans`)."""
        ...


@dataclass(frozen=True, slots=True)
class Receipt:
    end_user: str
    counts: dict[str, int]
    started_at: float
    completed_at: float

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class DataSubjects:
    """The registry of holders; `gateway.compliance.subjects`."""

    holders: list[PersonalData] = field(default_factory=list)
    before_erase: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run first (the trace writer's flush), so nothing still in memory lands afterwards."""
    on_failure: list[Callable[[str, Exception], object]] = field(default_factory=list)
    """Told (end user, error) when an erasure fails part-way: the breach alert."""

    def register(self, holder: PersonalData) -> None:
        if any(h.name == holder.name for h in self.holders):
            raise ValueError(f"a personal-data holder named {holder.name!r} is registered")
        self.holders.append(holder)

    async def export(self, end_user: str) -> dict[str, Any]:
        check_end_user(end_user)
        return {holder.name: await holder.export(end_user) for holder in self.holders}

    async def erase(self, end_user: str) -> Receipt:
        """Erase in registration order (the journal before the tables it would refill)."""
        check_end_user(end_user)
        started = time.time()
        counts: dict[str, int] = {}
        holder_name = "before_erase"
        try:
            for hook in self.before_erase:
                await hook()
            for holder in self.holders:
                holder_name = holder.name
                for name, count in (await holder.erase(end_user)).items():
                    counts[name] = counts.get(name, 0) + count
        except Exception as exc:
            for tell in self.on_failure:
                tell(end_user, exc)
            if isinstance(exc, OpsgateError):
                raise  # already an answer a client understands (a part's own 503)
            raise ErasureFailedError(
                f"Erasure did not complete: the {holder_name!r} data could not be erased "
                f"({type(exc).__name__}). What was erased before it is gone; erasure is "
                "idempotent, so run it again once the cause is fixed."
            ) from exc
        return Receipt(end_user, counts, started, time.time())
