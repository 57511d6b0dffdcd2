"""Scores as personal data and under retention.

A score names its trace's end user (copied when it was accepted), and its comment and
correction are the end user's words about their conversation. `ScoreData` registers with the
GDPR registry (compliance/subjects.py): export lists an end user's scores, erasure deletes
them and forgets their recent traces, so a score posted afterwards finds no trace (404). The
erasure tombstone keeps scores still on their way out of other replicas (feedback/scores_sql.py).

`ScoreRetention` deletes scores older than the `retention:` policy's `traces_days` for the
scored trace's key, team or the default (the same rules as traces, by the score's `created_at`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.compliance.retention import DAY, rules
from opsgate.config.compliance import RetentionConfig
from opsgate.feedback.scores import Score
from opsgate.feedback.scores_sql import score_from_row
from opsgate.feedback.targets import RecentTraces
from opsgate.store.tables.feedback import scores

BATCH = 500


def score_json(score: Score) -> dict[str, Any]:
    """A score as the API and exports show it (`value` in the metric's type)."""
    return {
        "object": "feedback.score",
        "id": score.score_id,
        "metric": score.metric,
        "type": score.type,
        "value": score.typed_value,
        "source": score.source,
        "created_at": score.created_at,
        "trace_id": score.trace_id,
        "session_id": score.session_id,
        "comment": score.comment if score.type != "comment" else None,
        "correction": score.correction,
        "author": score.author,
        "idempotency_key": score.idempotency_key,
        "metadata": score.metadata,
        "model": score.model,
        "deployment": score.deployment,
        "key_id": score.key_id,
        "team_id": score.team_id,
        "user_id": score.user_id,
        "end_user": score.end_user,
        "trace_started_at": score.trace_started_at,
    }


class ScoreData:
    """The GDPR holder for scores (`PersonalData`)."""

    name = "scores"

    def __init__(self, engine: AsyncEngine, recent: RecentTraces) -> None:
        self._engine = engine
        self._recent = recent

    async def export(self, end_user: str) -> list[dict[str, Any]]:
        stmt = select(scores).where(scores.c.end_user == end_user).order_by(scores.c.created_at)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [score_json(score_from_row(row)) for row in rows]

    async def erase(self, end_user: str) -> dict[str, int]:
        self._recent.forget_end_user(end_user)
        total = 0
        while True:
            async with self._engine.begin() as conn:
                picked = select(scores.c.score_id).where(scores.c.end_user == end_user)
                ids = [r[0] for r in await conn.execute(picked.limit(BATCH))]
                if ids:
                    await conn.execute(delete(scores).where(scores.c.score_id.in_(ids)))
            total += len(ids)
            if len(ids) < BATCH:
                return {"scores": total}


class ScoreRetention:
    """The retention sweep for scores (`compliance.retention.Sweep`)."""

    name = "scores"

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def sweep(self, config: RetentionConfig, now: float) -> int:
        total = 0
        for rule in rules(config, "traces_days", scores):
            where = [*rule.where, scores.c.created_at < now - rule.days * DAY]
            pick = select(scores.c.score_id).where(*where).limit(config.batch_size)
            while True:
                async with self._engine.begin() as conn:
                    ids = [r[0] for r in await conn.execute(pick)]
                    if ids:
                        await conn.execute(delete(scores).where(scores.c.score_id.in_(ids)))
                total += len(ids)
                if len(ids) < config.batch_size:
                    break
                await asyncio.sleep(config.pause)
        return total
