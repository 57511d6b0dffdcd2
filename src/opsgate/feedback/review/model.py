"""The plain types of review queues: what the queue store hands out, free of SQL."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsgate.feedback.selection import TraceFilter


@dataclass(frozen=True, slots=True)
class QueueInfo:
    id: str
    name: str
    team_id: str | None
    description: str | None
    filter: TraceFilter
    sample: float
    reviewers: tuple[str, ...]
    metrics: tuple[str, ...]
    lease_seconds: float
    since: float
    filled_until: float
    scored_until: float
    filled_at: float | None
    created_at: float
    created_by: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class Item:
    queue_id: str
    trace_id: str
    started_at: float
    state: str
    assigned_to: str | None
    lease_until: float | None
    done_by: str | None
    done_at: float | None
    enqueued_at: float

    def held_by(self, reviewer: str, now: float) -> bool:
        return self.assigned_to == reviewer and (self.lease_until or 0) >= now


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    done: int
    pending: int
    in_progress: int
    """Pending items a reviewer holds a live lease on."""
    labelled_by: dict[str, int] = field(default_factory=dict)
    skipped_by: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Action:
    id: int
    trace_id: str
    action: str
    score_ids: tuple[str, ...]
