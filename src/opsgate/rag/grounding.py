"""The grounding score: after an answer built on retrieved passages, the hallucination
detector (evals/hallucination) scores how well the passages support it, off the request path,
and the score lands in the one score store with source `online` (1 = supported).

A bounded queue feeds one worker; a full queue drops the job and counts it (never blocks a
request). The trace is published just after the answer, so a score whose trace is not known
yet is retried a few times before it is given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from opsgate.access.principal import MASTER, Principal
from opsgate.errors import NotFoundError, OpsgateError
from opsgate.evals.hallucination import HallucinationDetector
from opsgate.feedback.metrics import ScoreInput
from opsgate.feedback.scores import Score

log = logging.getLogger("opsgate.rag")
QUEUE_SIZE = 1000
RETRIES = (0.2, 0.5, 1.0, 2.0, 4.0)
MAX_KNOWLEDGE_CHARS = 20_000


class Recorder(Protocol):
    async def record(self, inputs: Sequence[ScoreInput], who: Principal) -> list[Score]: ...


@dataclass(frozen=True, slots=True)
class GroundingJob:
    trace_id: str
    knowledge: str
    question: str
    answer: str


@dataclass
class GroundingStats:
    submitted: int = 0
    recorded: int = 0
    dropped: int = 0
    failed: int = 0


class GroundingScorer:
    def __init__(self, recorder: Recorder, metric: str = "grounding") -> None:
        self.recorder = recorder
        self.metric = metric
        self.stats = GroundingStats()
        self._queue: asyncio.Queue[GroundingJob] = asyncio.Queue(QUEUE_SIZE)
        self._detector: HallucinationDetector | None = None
        self._task: asyncio.Task[None] | None = None

    def submit(self, job: GroundingJob) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._work())
        try:
            self._queue.put_nowait(job)
            self.stats.submitted += 1
        except asyncio.QueueFull:
            self.stats.dropped += 1

    async def drain(self) -> None:
        """Wait until every submitted job is scored (tests, shutdown)."""
        if self._task is not None:
            await self._queue.join()

    async def aclose(self) -> None:
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), 5.0)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._score(job)
            except Exception:
                self.stats.failed += 1
                log.exception("grounding score for trace %s failed", job.trace_id)
            finally:
                self._queue.task_done()

    async def _score(self, job: GroundingJob) -> None:
        if self._detector is None:
            self._detector = await asyncio.to_thread(HallucinationDetector.load)
        detector = self._detector
        knowledge = job.knowledge[:MAX_KNOWLEDGE_CHARS]
        result = await asyncio.to_thread(detector.score, knowledge, job.question, job.answer)
        item = ScoreInput(
            metric=self.metric,
            type="float",
            level="inference",
            trace_id=job.trace_id,
            value=round(1.0 - result.score, 4),
            comment=", ".join(result.reasons)[:500] or None,
            source="online",
            metadata={"scorer": "hallucination_detector", "via": "rag"},
        )
        for delay in RETRIES:
            try:
                await self.recorder.record([item], MASTER)
            except NotFoundError:  # the trace is not published yet
                await asyncio.sleep(delay)
                continue
            except OpsgateError as exc:
                self.stats.failed += 1
                log.warning("grounding score for %s refused: %s", job.trace_id, exc.message)
                return
            self.stats.recorded += 1
            return
        self.stats.failed += 1
