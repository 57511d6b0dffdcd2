"""`ReviewService`: review queues as the admin API, the dashboard and the CLI use them.

Who may do what (the role table gives `traces:review` and `reviews:manage`; this adds where):

- a queue belongs to a team, or (made by an admin without one) to no team;
- `reviews:manage` (admin, team_admin) creates, changes, fills and deletes the queues of its
  scope and reviews all of them;
- `traces:review` alone (member) reviews only the queues of its own team that name it, by user
  id or key id, in `reviewers`: the grant. A queue the caller may not review answers 404.

A label is written to the one score store (source `reviewer`, the correction with it) through
`FeedbackService.record`, which checks it against the declared metrics. Undo takes back the
reviewer's latest action in the queue: a label's scores are deleted and the item is theirs again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.access.permissions import Permission, allowed, is_global
from opsgate.access.principal import Principal
from opsgate.config.feedback import FeedbackConfig
from opsgate.errors import BadRequestError, NotFoundError, PermissionDeniedError
from opsgate.feedback.metrics import ScoreInput, parse_score
from opsgate.feedback.review import fill
from opsgate.feedback.review.model import Item, Progress, QueueInfo
from opsgate.feedback.review.rules import QueueCreate, QueueUpdate
from opsgate.feedback.review.store import QueueStore
from opsgate.feedback.scores import Score
from opsgate.feedback.selection import check_conditions, resolve_time

FILL_EVERY = 5.0
"""Seconds between automatic fills of a queue (on `next` and on reads of its progress)."""


class Recorder(Protocol):
    """Where labels go: `FeedbackService` (record checks and queues; flush waits; delete)."""

    async def record(self, inputs: Sequence[ScoreInput], who: Principal) -> list[Score]: ...

    async def retract(self, score_ids: Sequence[str]) -> int: ...


@dataclass(frozen=True, slots=True)
class Labels:
    """What a reviewer says about one item: metric values, a comment, a better answer."""

    scores: Mapping[str, Any]
    comment: str | None = None
    correction: Any = None


def reviewer_id(who: Principal) -> str:
    """How counts and claims name a reviewer: their user, else their key."""
    return f"user:{who.user_id}" if who.user_id else f"key:{who.key_id}"


class ReviewService:
    def __init__(
        self,
        engine: AsyncEngine,
        recorder: Recorder,
        config: Callable[[], FeedbackConfig],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = QueueStore(engine)
        self._engine = engine
        self._recorder = recorder
        self._config = config
        self._clock = clock

    # --- scope -----------------------------------------------------------------------------

    @staticmethod
    def manages(who: Principal) -> bool:
        return allowed(who, Permission.REVIEWS_MANAGE)

    @staticmethod
    def owners(who: Principal) -> list[str] | None:
        if is_global(who):
            return None
        return [who.team_id] if who.team_id else []

    def may_review(self, who: Principal, queue: QueueInfo) -> bool:
        owners = self.owners(who)
        if owners is not None and (queue.team_id or "") not in owners:
            return False
        if self.manages(who):
            return True
        if not allowed(who, Permission.TRACES_REVIEW) or queue.team_id is None:
            return False
        return who.key_id in queue.reviewers or (
            who.user_id is not None and who.user_id in queue.reviewers
        )

    async def resolve(self, who: Principal, ref: str, *, manage: bool = False) -> QueueInfo:
        """A queue by id or name that `who` may review (or, with `manage`, change); 404."""
        owners = self.owners(who)
        found: list[QueueInfo] = []
        by_id = await self.store.get(ref) if ref.startswith("rq_") else None
        if by_id is not None:
            found = [by_id]
        else:
            found = await self.store.find(ref, owners)
        found = [f for f in found if self.may_review(who, f)]
        if len(found) > 1:
            raise ConflictError(
                f"several review queues are named {ref!r} (in different teams); use the id",
                code="ambiguous_name",
            )
        if not found:
            raise NotFoundError(f"no review queue {ref!r}", code="queue_not_found")
        if manage and not self.manages(who):
            raise PermissionDeniedError(
                f"role {who.role.value!r} lacks the permission 'reviews:manage'"
            )
        return found[0]

    async def visible(self, who: Principal) -> list[QueueInfo]:
        return [q for q in await self.store.in_scope(self.owners(who)) if self.may_review(who, q)]

    async def lookup(self, who: Principal, ref: str) -> tuple[str, str | None]:
        """(id, team) of a queue `who` may review: what datasets built from a queue need."""
        queue = await self.resolve(who, ref)
        return queue.id, queue.team_id

    # --- queues ----------------------------------------------------------------------------

    async def create(self, who: Principal, req: QueueCreate, actor: str) -> QueueInfo:
        team = self._team_for(who, req.team_id)
        self._check_metrics(req.metrics)
        check_conditions(req.rule, self._config().metrics, "rule")
        now = self._clock()
        since = resolve_time(req.rule.since, now, "rule.since") if req.rule.since else 0.0
        until = resolve_time(req.rule.until, now, "rule.until") if req.rule.until else None
        rule = req.rule.model_copy(update={"since": since, "until": until, "team_id": team})
        if req.rule.team_id not in (None, team):
            raise PermissionDeniedError(
                f"rule.team_id {req.rule.team_id!r} is outside the queue's team ({team!r})",
                code="outside_scope",
                param="rule.team_id",
            )
        queue_id = "rq_" + secrets.token_hex(8)
        queue = await self.store.create(
            queue_id, req.model_copy(update={"rule": rule}), team, since, actor, now
        )
        await fill.fill(self._engine, self.store, queue, now)
        return await self._current(queue)

    async def update(self, who: Principal, ref: str, req: QueueUpdate) -> QueueInfo:
        queue = await self.resolve(who, ref, manage=True)
        values = req.model_dump(exclude_unset=True)
        if "metrics" in values:
            self._check_metrics(values["metrics"] or [])
        if values:
            await self.store.update(queue.id, values, self._clock())
        return await self._current(queue)

    async def delete(self, who: Principal, ref: str) -> QueueInfo:
        queue = await self.resolve(who, ref, manage=True)
        await self.store.delete(queue.id)
        return queue

    async def refill(self, who: Principal, ref: str) -> tuple[QueueInfo, int]:
        queue = await self.resolve(who, ref, manage=True)
        added = await fill.fill(self._engine, self.store, queue, self._clock())
        return await self._current(queue), added

    async def progress(self, queue: QueueInfo) -> Progress:
        await self._fresh(queue)
        return await self.store.progress(queue.id, self._clock())

    def metrics_of(self, queue: QueueInfo) -> list[str]:
        """What reviewers label in this queue (declared metrics, the queue's choice first)."""
        declared = self._config().metrics
        names = [m for m in queue.metrics if m in declared] or list(declared)
        return [m for m in names if declared[m].level == "inference"]

    def _team_for(self, who: Principal, asked: str | None) -> str | None:
        if is_global(who):
            return asked
        if who.team_id is None or asked not in (None, who.team_id):
            raise PermissionDeniedError(
                f"team_id {asked!r} is outside your scope (team_id {who.team_id!r})",
                code="outside_scope",
                param="team_id",
            )
        return who.team_id

    def _check_metrics(self, names: Sequence[str]) -> None:
        declared = self._config().metrics
        for n, name in enumerate(names):
            if name not in declared:
                raise BadRequestError(
                    f"metrics[{n}]: unknown metric {name!r} (declared: "
                    f"{', '.join(sorted(declared)) or 'none'})",
                    code="unknown_metric",
                    param=f"metrics[{n}]",
                )

    async def _current(self, queue: QueueInfo) -> QueueInfo:
        return await self.store.get(queue.id) or queue

    async def _fresh(self, queue: QueueInfo) -> None:
        now = self._clock()
        if queue.filled_at is None or now - queue.filled_at >= FILL_EVERY:
            await fill.fill(self._engine, self.store, queue, now)

    # --- reviewing -------------------------------------------------------------------------

    async def next(self, who: Principal, queue: QueueInfo) -> Item | None:
        """The item `who` holds, else a newly claimed one; None when the queue has none left
        for them."""
        me, now = reviewer_id(who), self._clock()
        held = await self.store.held(queue.id, me, now)
        if held is not None:
            return held
        claimed = await self.store.claim(queue.id, me, now, queue.lease_seconds)
        if claimed is None and (queue.filled_at is None or now - queue.filled_at >= FILL_EVERY):
            await fill.fill(self._engine, self.store, queue, now)
            claimed = await self.store.claim(queue.id, me, now, queue.lease_seconds)
        return claimed

    async def item(self, queue: QueueInfo, trace_id: str) -> Item:
        found = await self.store.item(queue.id, trace_id)
        if found is None:
            raise NotFoundError(
                f"trace {trace_id!r} is not in queue {queue.name!r}", code="item_not_found"
            )
        return found

    async def label(
        self, who: Principal, queue: QueueInfo, trace_id: str, labels: Labels
    ) -> list[Score]:
        """Write `labels` as reviewer scores and mark the item done (all or nothing)."""
        inputs = self._inputs(queue, trace_id, labels)
        await self.item(queue, trace_id)
        me, now = reviewer_id(who), self._clock()
        action = await self.store.finish(queue.id, trace_id, me, now)
        if action is None:
            raise ConflictError(
                "this item is labelled already, or another reviewer holds it",
                code="item_taken",
            )
        try:
            written = await self._recorder.record(inputs, who)
        except BaseException:
            last = await self.store.last_action(queue.id, me)
            if last is not None and last.id == action:
                await self.store.undo(queue.id, last, me, now, queue.lease_seconds)
            raise
        await self.store.scored(action, [s.score_id for s in written])
        return written

    def _inputs(self, queue: QueueInfo, trace_id: str, labels: Labels) -> list[ScoreInput]:
        config = self._config()
        allowed_metrics = self.metrics_of(queue)
        if not labels.scores:
            raise BadRequestError(
                "label at least one metric (a comment or correction rides on a label)",
                code="no_labels",
                param="scores",
            )
        inputs = []
        for n, (metric, value) in enumerate(labels.scores.items()):
            if metric not in allowed_metrics:
                raise BadRequestError(
                    f"scores.{metric}: queue {queue.name!r} labels {', '.join(allowed_metrics)}",
                    code="unknown_metric",
                    param=f"scores.{metric}",
                )
            data: dict[str, Any] = {
                "metric": metric,
                "value": value,
                "trace_id": trace_id,
                "source": "reviewer",
            }
            if n == 0:  # the comment and the correction ride on the first label
                if labels.comment:
                    data["comment"] = labels.comment
                if labels.correction is not None:
                    data["correction"] = labels.correction
            inputs.append(parse_score(data, config, f"scores.{metric}."))
        return inputs

    async def skip(self, who: Principal, queue: QueueInfo, trace_id: str) -> None:
        await self.item(queue, trace_id)
        if not await self.store.skip(queue.id, trace_id, reviewer_id(who), self._clock()):
            raise ConflictError(
                "this item is labelled already, or another reviewer holds it",
                code="item_taken",
            )

    async def undo(self, who: Principal, queue: QueueInfo) -> tuple[str, Item, bool]:
        """Take back `who`'s latest action here: (what it was, the item, whether it is theirs
        again); 409 when there is nothing to undo."""
        me, now = reviewer_id(who), self._clock()
        last = await self.store.last_action(queue.id, me)
        if last is None:
            raise ConflictError("nothing to undo in this queue", code="nothing_to_undo")
        if last.score_ids:
            await self._recorder.retract(last.score_ids)
        mine = await self.store.undo(queue.id, last, me, now, queue.lease_seconds)
        return last.action, await self.item(queue, last.trace_id), mine
