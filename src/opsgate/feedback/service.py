"""`FeedbackService`: the gateway's feedback runtime (composition root: gateway.py).

It accepts scores (`submit` for `POST /v1/feedback`, `record` for services inside the gateway
such as review queues and eval runs), issues feedback tokens, and owns the score store, the
background writer, the index of recent traces and the feedback metrics. Accepting a score:

1. its metric and value were checked against the declared metrics (feedback/metrics.py);
2. the caller may send it: a key's scope (access/scoping.py `score_scope`: its team's traces)
   or a feedback token's trace, session and metrics;
3. its trace (or session) is found (feedback/targets.py: memory first, one read otherwise) and
   lies in that scope; else 404, exactly as for an id that does not exist;
4. the scores of the request are queued all or none (503 when the queue is full), then
   counted in Prometheus and emitted as OpenTelemetry `gen_ai.evaluation.result` events.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.access.principal import Principal
from opsgate.access.scoping import score_scope
from opsgate.config.feedback import FeedbackConfig
from opsgate.errors import (
    PermissionDeniedError,
    ServiceUnavailableError,
)
from opsgate.feedback.metrics import ScoreInput
from opsgate.feedback.scores import Score, ScoreSource, Target
from opsgate.feedback.scores_sqlite import SqliteScoreStore, score_store
from opsgate.feedback.targets import RecentTraces, TargetFinder
from opsgate.feedback.tokens import HEADER, TokenClaims, TokenSigner, invalid, token_key
from opsgate.feedback.writer import ScoreWriter, ScoreWriterStats
from opsgate.telemetry.feedback_metrics import FeedbackMetrics
from opsgate.telemetry.otel import GenAITracer
from opsgate.trace import TraceRecord

log = logging.getLogger("opsgate.feedback")

API_SOURCES: frozenset[ScoreSource] = frozenset({"api", "end_user", "evaluator"})
"""What a key may name as `source` on `POST /v1/feedback`; `reviewer` and `online` scores are
written by the gateway's own review queues and online scoring (`record`)."""
_IDEMPOTENCY_MEMORY = 50_000


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends scores: a key's principal, or a verified feedback token."""

    principal: Principal | None = None
    token: TokenClaims | None = None
    internal: bool = False
    """A part of the gateway (review queues, eval runs): any source is allowed."""

    @property
    def author(self) -> str | None:
        return self.principal.key_id if self.principal is not None else None


class FeedbackService:
    def __init__(
        self,
        config: FeedbackConfig,
        engine: AsyncEngine,
        *,
        master_key: str | None = None,
        metrics: FeedbackMetrics | None = None,
        tracer: GenAITracer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = score_store(engine)
        self.recent = RecentTraces(config.recent_traces)
        self.targets = TargetFinder(engine, self.recent, wait=config.trace_wait)
        self.metrics = metrics
        self.tracer = tracer if tracer is not None and tracer.enabled else None
        self._clock = clock
        self._master_key = master_key
        self.signer = self._signer(config) if config.enabled else None
        self.writer = ScoreWriter(
            self.store,
            capacity=config.queue_size,
            batch_size=config.batch_size,
            flush_interval=config.flush_interval,
            on_batch=self._on_batch,
        )
        self._written = self._failures = 0
        self._seen: dict[str, bytes] = {}
        """Recent score ids from idempotency keys, with a fingerprint of what they said."""

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def _signer(self, config: FeedbackConfig) -> TokenSigner:
        """Made only once metrics are declared: without a configured key it warns."""
        configured = config.token_key.get_secret_value() if config.token_key else None
        return TokenSigner(token_key(configured, self._master_key), config.token_ttl, self._clock)

    def reload(self, config: FeedbackConfig) -> None:
        """New metrics and limits apply to the next request (the writer's batching at the next
        start); a new token key or ttl makes a new signer (outstanding tokens then need the old
        key: they fail as forged)."""
        changed = (config.token_key, config.token_ttl) != (
            self.config.token_key,
            self.config.token_ttl,
        )
        if config.enabled and (changed or self.signer is None):
            self.signer = self._signer(config)
        self.targets.wait = config.trace_wait
        self.writer.capacity = config.queue_size
        self.config = config

    # -- the chat path ----------------------------------------------------------------------

    def observe(self, record: TraceRecord) -> None:
        """The trace publisher's hook: remember the trace so scores for it are accepted
        before the writer has stored it."""
        if self.config.enabled:
            self.recent.add(record)

    def issue_token(self, trace_id: str, *, team_id: str | None, session_id: str | None) -> str:
        assert self.signer is not None, "tokens are issued only while feedback is enabled"
        return self.signer.issue(
            trace_id,
            self.config.token_metric_names(),
            team_id=team_id,
            session_id=session_id,
        )

    def verify_token(self, token: str) -> TokenClaims:
        if self.signer is None:
            raise invalid("feedback is not configured on this gateway")
        return self.signer.verify(token)

    # -- accepting scores -------------------------------------------------------------------

    async def submit(self, inputs: Sequence[ScoreInput], caller: Caller) -> list[Score]:
        """Accept the scores of one `POST /v1/feedback`, all or none."""
        for item in inputs:
            _allowed(item, caller)
        scope = _scope(caller)
        targets = await self.targets.resolve(inputs, scope)
        now = self._clock()
        scores = [
            self._score(item, target, caller, now)
            for item, target in zip(inputs, targets, strict=True)
        ]
        fresh = self._deduplicated(scores)
        if fresh and not self.writer.offer(fresh):
            raise ServiceUnavailableError(
                "the feedback queue is full (the database is behind); retry shortly",
                code="feedback_queue_full",
                headers={"retry-after": "1"},
            )
        self._announce(fresh)
        return scores

    async def record(self, inputs: Sequence[ScoreInput], who: Principal) -> list[Score]:
        """Accept scores from a part of the gateway (review queues, eval runs, online scoring),
        in `who`'s scope, with any source."""
        return await self.submit(inputs, Caller(principal=who, internal=True))

    def _score(self, item: ScoreInput, target: Target, caller: Caller, now: float) -> Score:
        source: ScoreSource = item.source or ("end_user" if caller.token else "api")
        return Score(
            score_id=_score_id(item, target),
            metric=item.metric,
            type=item.type,
            source=source,
            created_at=now,
            trace_id=target.trace_id,
            session_id=target.session_id,
            value=item.value,
            label=item.label,
            comment=item.comment,
            correction=item.correction,
            author=caller.author,
            idempotency_key=item.idempotency_key,
            metadata=item.metadata,
            trace_started_at=target.started_at,
            model=target.model,
            deployment=target.deployment,
            key_id=target.key_id,
            team_id=target.team_id,
            user_id=target.user_id,
            end_user=target.end_user,
        )

    def _deduplicated(self, scores: list[Score]) -> list[Score]:
        """The scores to store: a repeated idempotency key is the same score (stored once,
        the same answer), unless it now says something else (409)."""
        fresh: list[Score] = []
        for score in scores:
            if score.idempotency_key is None:
                fresh.append(score)
                continue
            print_ = _fingerprint(score)
            seen = self._seen.get(score.score_id)
            if seen is not None and seen != print_:
                raise ConflictError(
                    f"idempotency key {score.idempotency_key!r} was used for a different score",
                    code="idempotency_key_reused",
                    param="idempotency_key",
                )
            if seen is None:
                fresh.append(score)
        for score in fresh:
            if score.idempotency_key is not None:
                self._seen[score.score_id] = _fingerprint(score)
        while len(self._seen) > _IDEMPOTENCY_MEMORY:
            del self._seen[next(iter(self._seen))]
        return fresh

    def _announce(self, scores: Sequence[Score]) -> None:
        for score in scores:
            if self.metrics is not None:
                self.metrics.accepted(score.metric, score.source)
            if self.tracer is not None:
                try:
                    self._emit(score)
                except Exception:
                    log.exception("OpenTelemetry export failed for score %s", score.score_id)
        if self.metrics is not None:
            self.metrics.queue_depth.set(self.writer.depth)

    def _emit(self, score: Score) -> None:
        assert self.tracer is not None
        value = score.value if score.type in ("float", "boolean") else None
        label = score.label
        if score.type == "boolean" and value is not None:
            label = "true" if value >= 0.5 else "false"
        attributes: dict[str, str] = {
            "opsgate.score_id": score.score_id,
            "opsgate.score.source": score.source,
        }
        if score.session_id:
            attributes["gen_ai.conversation.id"] = score.session_id
        self.tracer.emit_evaluation(
            score.metric,
            trace_id=score.trace_id,
            at=score.created_at,
            value=value,
            label=label,
            explanation=score.comment,
            attributes=attributes,
        )

    def _on_batch(self, stats: ScoreWriterStats) -> None:
        """After each batch the writer wrote or failed: advance the counters by the change."""
        if self.metrics is None:
            return
        if stats.written > self._written:
            self.metrics.written.inc(stats.written - self._written)
        if stats.failures > self._failures:
            self.metrics.store_failures.inc(stats.failures - self._failures)
        self._written, self._failures = stats.written, stats.failures
        self.metrics.queue_depth.set(self.writer.depth)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, spill: str | Path | None) -> None:
        await self.writer.start(spill)

    async def aclose(self) -> None:
        await self.writer.stop()
        if isinstance(self.store, SqliteScoreStore):
            await self.store.aclose()


def _scope(caller: Caller) -> dict[str, str]:
    if caller.token is not None:
        return {"team_id": caller.token.team_id} if caller.token.team_id else {}
    assert caller.principal is not None
    return score_scope(caller.principal)


def _allowed(item: ScoreInput, caller: Caller) -> None:
    """403 for what this caller may not send (checked before anything is looked up)."""
    token = caller.token
    if token is None:
        if item.source is not None and item.source not in API_SOURCES and not caller.internal:
            raise PermissionDeniedError(
                f"source {item.source!r} is written by the gateway itself; a key may send "
                f"{', '.join(sorted(API_SOURCES))}",
                code="source_not_allowed",
                param=f"{item.param}source",
            )
        return
    if item.source not in (None, "end_user"):
        raise _token_refused("a feedback token sends end_user scores only", item, "source")
    if item.metric not in token.metrics:
        raise _token_refused(
            f"this feedback token may not score metric {item.metric!r}", item, "metric"
        )
    if item.trace_id is not None and item.trace_id != token.trace_id:
        raise _token_refused("this feedback token is for another trace", item, "trace_id")
    if item.trace_id is None and item.session_id != token.session_id:
        raise _token_refused("this feedback token is for another session", item, "session_id")


def _token_refused(message: str, item: ScoreInput, field: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"{message} (header {HEADER})",
        code="feedback_token_mismatch",
        param=f"{item.param}{field}",
    )


def _score_id(item: ScoreInput, target: Target) -> str:
    """Random, or derived from the idempotency key within the scored trace's team (so a
    repeat is the same row, and two teams never collide)."""
    if item.idempotency_key is None:
        return "sc_" + os.urandom(12).hex()
    owner = target.team_id or f"key:{target.key_id or ''}"
    digest = hashlib.sha256(f"{owner}\n{item.idempotency_key}".encode()).hexdigest()
    return "sc_" + digest[:24]


def _fingerprint(score: Score) -> bytes:
    what = (
        score.metric,
        score.trace_id,
        score.session_id,
        score.value,
        score.label,
        score.comment,
        score.correction,
    )
    return hashlib.sha256(orjson.dumps(what, option=orjson.OPT_SORT_KEYS)).digest()
