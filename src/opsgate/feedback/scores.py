"""The score store's interface: one store for every source of "how good was this answer".

A `Score` is one value of a declared metric (config/feedback.py) about a trace (`level:
inference`) or a session (`level: session`), from one source: `end_user` (a feedback token, or
an application relaying its user), `api` (the application itself), `reviewer` (review queues),
`evaluator` (eval runs) or `online` (sampled live scoring). Prompts, experiments, evaluations,
drift, datasets and dashboards all read this store; nothing keeps a second copy.

The trace id is the join key across the improvement loop. Each score also carries copies of its
trace's owners and route (team, key, user, end user, model, deployment, start time), taken when
it was accepted, so scope checks, erasure and rollups need no join; experiments and datasets
that want more of the trace join `scores.trace_id` to `traces.trace_id`.

Writes are idempotent on `score_id` (derived from the idempotency key when one is given), so a
batch may be written twice. Only the background `ScoreWriter` writes through `write_batch`;
services inside the gateway (review queues, eval runs) hand scores to
`FeedbackService.record`, which validates them against the declared metrics first.

Backends: `SqlScoreStore` (SQLite and PostgreSQL, feedback/scores_sql.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from opsgate.config.feedback import MetricType
from opsgate.store.queries import MAX_LIMIT, InvalidQueryError, decode_cursor

ScoreSource = Literal["end_user", "api", "reviewer", "evaluator", "online"]
SOURCES: tuple[ScoreSource, ...] = get_args(ScoreSource)

ScoreValue = bool | float | str | None
"""A score's value as clients see it: bool (boolean), float (float), str (category or
comment)."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a score is about, as the trace store knows it; copied onto the score."""

    trace_id: str | None
    session_id: str | None
    started_at: float | None
    """The trace's start (for a session: its latest trace's)."""
    model: str | None = None
    deployment: str | None = None
    key_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    end_user: str | None = None


@dataclass(frozen=True, slots=True)
class Score:
    """One stored score. Exactly one of `value` (float and boolean metrics, boolean as 1.0 or
    0.0), `label` (category) or `comment` (comment metrics) holds the value; `comment` may also
    accompany the others."""

    score_id: str
    metric: str
    type: MetricType
    source: ScoreSource
    created_at: float
    """Epoch seconds."""
    trace_id: str | None = None
    session_id: str | None = None
    value: float | None = None
    label: str | None = None
    comment: str | None = None
    correction: dict[str, Any] | None = None
    """The better answer, as an assistant chat message (`{"role": "assistant", ...}`)."""
    author: str | None = None
    """The key id that sent it; None for a feedback token (the end user)."""
    idempotency_key: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    trace_started_at: float | None = None
    model: str | None = None
    deployment: str | None = None
    key_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    end_user: str | None = None

    @property
    def began_at(self) -> float:
        """When the scored answer (or the session's latest) began, else when the score was
        taken: what an erasure tombstone is compared with (store/erasures.py)."""
        return self.trace_started_at if self.trace_started_at is not None else self.created_at

    @property
    def typed_value(self) -> ScoreValue:
        """The value in its metric's type (what the API shows as `value`)."""
        if self.type == "boolean":
            return None if self.value is None else self.value >= 0.5
        if self.type == "category":
            return self.label
        if self.type == "comment":
            return self.comment
        return self.value


SCORE_FILTERS: tuple[str, ...] = (
    "metric",
    "source",
    "trace_id",
    "session_id",
    "model",
    "deployment",
    "key_id",
    "team_id",
    "user_id",
    "end_user",
)
"""The `ScoreQuery` fields matched exactly (each a column of `scores`)."""


@dataclass(frozen=True, slots=True)
class ScoreQuery:
    """Which scores to list, newest first. Every filter given must match (AND)."""

    since: float | None = None
    """Epoch seconds (`created_at`), inclusive."""
    until: float | None = None
    """Epoch seconds, exclusive."""
    metric: str | None = None
    source: str | None = None
    trace_id: str | None = None
    session_id: str | None = None
    model: str | None = None
    deployment: str | None = None
    key_id: str | None = None
    """The key that made the scored request (not the score's author)."""
    team_id: str | None = None
    user_id: str | None = None
    end_user: str | None = None
    limit: int = 50
    cursor: str | None = None
    """`ScorePage.next_cursor` of the previous page."""

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidQueryError("limit", f"limit must be between 1 and {MAX_LIMIT}")
        if self.source is not None and self.source not in SOURCES:
            raise InvalidQueryError("source", f"source must be one of {', '.join(SOURCES)}")
        if self.cursor is not None:
            decode_cursor(self.cursor)

    def equalities(self) -> list[tuple[str, str]]:
        """(column, value) for each exact-match filter that is set."""
        return [(n, v) for n in SCORE_FILTERS if (v := getattr(self, n)) is not None]


@dataclass(frozen=True, slots=True)
class ScorePage:
    items: list[Score]
    next_cursor: str | None
    """None on the last page."""


ScoreDimension = Literal[
    "metric", "source", "model", "deployment", "key_id", "team_id", "user_id", "end_user"
]
SCORE_DIMENSIONS: tuple[ScoreDimension, ...] = get_args(ScoreDimension)


@dataclass(frozen=True, slots=True)
class RollupQuery:
    """Score aggregates per metric in buckets `step` seconds wide (by `created_at`), grouped by
    dimensions; the shape of a usage rollup, so the two can be merged bucket by bucket."""

    since: float
    until: float
    step: int = 3600
    group_by: tuple[ScoreDimension, ...] = ()
    filters: dict[ScoreDimension, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.step <= 0 or not math.isfinite(self.since) or not math.isfinite(self.until):
            raise ValueError("a rollup needs a positive step and a finite range")
        unknown = set(self.group_by) | set(self.filters)
        if not unknown <= set(SCORE_DIMENSIONS):
            raise ValueError(f"unknown score dimensions: {sorted(unknown - set(SCORE_DIMENSIONS))}")


@dataclass(frozen=True, slots=True)
class MetricTotals:
    """One metric in one rollup bucket. `mean` is the mean value of float scores and the rate
    of `true` for boolean ones; `labels` counts category values."""

    metric: str
    type: str
    count: int
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RollupRow:
    bucket: int
    """Epoch seconds at the bucket's start."""
    group: dict[str, str]
    """Dimension -> value ('' where the score had none)."""
    metrics: dict[str, MetricTotals]


@runtime_checkable
class ScoreStore(Protocol):
    """Where scores are kept. Only the background writer writes; anything may read."""

    async def write_batch(self, scores: Sequence[Score]) -> None:
        """Store scores, all or nothing; a `score_id` already stored is skipped (idempotent).

        Scores of an end user erased after their trace began are dropped (the erasure
        tombstone, store/erasures.py), so a late score cannot bring their data back. Raises
        `StoreUnavailableError` (try later) or `RecordRejectedError` (the data is refused).
        """
        ...

    async def list_scores(self, query: ScoreQuery) -> ScorePage:
        """One page of scores matching `query`, newest first."""
        ...

    async def for_traces(self, trace_ids: Sequence[str]) -> list[Score]:
        """Every score of these traces (inference level), oldest first: the join by trace id."""
        ...

    async def for_sessions(
        self, session_ids: Sequence[str], scope: Mapping[str, str]
    ) -> list[Score]:
        """Every session-level score of these sessions, oldest first, within `scope` (equality
        filters such as `{"team_id": "a"}`, access/permissions.py `scope_filter`; `{}` for
        all). Session ids are chosen by callers, so two teams may use the same one: the scope
        keeps them apart."""
        ...

    async def rollup(self, query: RollupQuery) -> list[RollupRow]:
        """Aggregates per bucket, group and metric, ordered by bucket then group."""
        ...
