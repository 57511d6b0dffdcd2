"""Labels into the one score store: `FeedbackService.record` writes them (checked, queued,
counted, emitted to OpenTelemetry); `retract` takes an undone label's scores out again.

`retract` waits for the score writer to drain first, so a score still queued cannot land after
its deletion. The delete itself is a statement on the `scores` table, as the score store has no
delete of its own yet (it would belong there).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.principal import Principal
from opsgate.feedback.metrics import ScoreInput
from opsgate.feedback.scores import Score
from opsgate.feedback.service import FeedbackService
from opsgate.store.tables.feedback import scores


class ScoreRecorder:
    def __init__(self, feedback: FeedbackService, engine: AsyncEngine) -> None:
        self._feedback = feedback
        self._engine = engine

    async def record(self, inputs: Sequence[ScoreInput], who: Principal) -> list[Score]:
        return await self._feedback.record(inputs, who)

    async def retract(self, score_ids: Sequence[str]) -> int:
        await self._feedback.writer.flush()
        async with self._engine.begin() as conn:
            gone = await conn.execute(delete(scores).where(scores.c.score_id.in_(list(score_ids))))
        return gone.rowcount
