"""`OnlineEvaluator`: scores drawn live answers in the background and records the scores.

`submit` is called on the event loop as a trace is published and only puts the answer on a
bounded queue (a full queue drops it, counted); `online_concurrency` worker tasks take answers
off and run the drawn rules' scorers. Scorers that call models (judges) go through the
gateway's own chat pipeline (`ChatClient`), so their calls are authenticated, routed, guarded,
cached, costed and traced like any other, and stop for the rest of the clock hour once judge
spend passes `online_usd_per_hour`. Each score goes to the one score store through
`FeedbackService.record` with source `online` and idempotency key `online:<trace>:<metric>`
(a trace is never scored twice for one metric), which also counts it in Prometheus and emits
it as an OpenTelemetry `gen_ai.evaluation.result` event.

A score is written in its declared metric's type: a `float` metric gets the scorer's value
(0..1, higher is better); a `boolean` metric gets whether the scorer **flagged** the answer
(label `fail` or `hallucinated`, or a value under 0.5), so its mean is the flagged rate: a
hallucination rate for the hallucination detector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opsgate.access.principal import MASTER, Principal
from opsgate.config.evals import EvalsConfig
from opsgate.config.feedback import MetricConfig
from opsgate.errors import OpsgateError
from opsgate.evals.client import ChatClient
from opsgate.evals.online.cap import HourlyCap
from opsgate.evals.online.rules import CompiledRule, Draw, RuleSet, compile_rules
from opsgate.evals.online.sample import sample_from
from opsgate.evals.online.window import ScoreWindow
from opsgate.evals.scorers import Sample, Scorer, ScoreResult, apply
from opsgate.feedback.metrics import ScoreInput
from opsgate.feedback.scores import Score
from opsgate.telemetry.online_metrics import OnlineMetrics
from opsgate.trace import TraceRecord

log = logging.getLogger("opsgate.evals.online")

FLAGGED_LABELS = frozenset({"fail", "hallucinated"})
STOP_WAIT_S = 5.0
TICK_S = 10.0
MAX_COMMENT = 1000


class Recorder(Protocol):
    """Where scores go: `FeedbackService.record` (checked, queued, counted, emitted)."""

    async def record(self, inputs: Sequence[ScoreInput], who: Principal) -> list[Score]: ...


@dataclass(slots=True)
class OnlineStats:
    """Counts since start, for the admin API and tests."""

    queued: int = 0
    dropped: int = 0
    abandoned: int = 0
    scored: int = 0
    """Answers whose scorers all ran (recorded or not)."""
    recorded: int = 0
    failed: int = 0
    skipped: int = 0
    refused: int = 0
    judge_cost_micros: int = 0


@dataclass(frozen=True, slots=True)
class _Job:
    trace_id: str
    draw: Draw
    sample: Sample


def flagged(result: ScoreResult) -> bool:
    if result.label is not None and result.label in FLAGGED_LABELS:
        return True
    if result.label in ("pass", "supported"):
        return False
    return result.value is not None and result.value < 0.5


class OnlineEvaluator:
    def __init__(
        self,
        config: EvalsConfig,
        declared: Mapping[str, MetricConfig],
        recorder: Recorder,
        *,
        judge: ChatClient | None = None,
        metrics: OnlineMetrics | None = None,
        source: str = "<config>",
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.recorder, self.judge, self.metrics = recorder, judge, metrics
        self._clock, self._rng = clock, rng
        self.stats = OnlineStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._windows: dict[tuple[str, str], ScoreWindow] = {}
        self._closed = False
        self.config = config
        self.rules = RuleSet(compile_rules(config, declared, judge, source=source), rng)
        self.cap = HourlyCap(config.online_usd_per_hour, clock)

    @property
    def enabled(self) -> bool:
        return bool(self.rules.rules)

    def reload(
        self, config: EvalsConfig, declared: Mapping[str, MetricConfig], source: str
    ) -> None:
        """New rules for the next draw (answers already queued keep theirs); the cap's spend
        this hour is kept. The number of workers changes at the next start."""
        self.rules = RuleSet(compile_rules(config, declared, self.judge, source=source), self._rng)
        spent = self.cap.spent_micros
        self.cap = HourlyCap(config.online_usd_per_hour, self._clock)
        self.cap.add(spent)
        self.config = config

    # -- the publishing side (on the event loop, never waits) --------------------------------

    def watches(self, model: str) -> bool:
        return self.rules.watches(model)

    def draw(self, trace: TraceRecord) -> Draw | None:
        return self.rules.draw(trace)

    def submit(
        self,
        trace: TraceRecord,
        draw: Draw,
        request: Mapping[str, Any] | None,
        output: str | None,
    ) -> bool:
        """Queue a drawn answer; False (counted as dropped) when the queue is full, or as
        abandoned once the evaluator has stopped."""
        if self._closed:
            self.stats.abandoned += 1
            self._count_sample("abandoned")
            return False
        if self._queue.qsize() >= self.config.online_queue_size:
            self.stats.dropped += 1
            self._count_sample("dropped")
            return False
        self._queue.put_nowait(_Job(trace.trace_id, draw, sample_from(request, output)))
        self.stats.queued += 1
        self._count_sample("queued")
        return True

    def _count_sample(self, outcome: str, n: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.samples.labels(outcome).inc(n)
            self.metrics.queue_depth.set(self._queue.qsize())

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # -- the background side ------------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        workers = self.config.online_concurrency
        self._tasks = [
            asyncio.create_task(self._work(), name=f"online-eval-{i}") for i in range(workers)
        ]
        self._tasks.append(asyncio.create_task(self._tick(), name="online-eval-gauges"))

    async def drain(self) -> None:
        """Wait until every queued answer is scored (tests, shutdown)."""
        await self._queue.join()

    async def aclose(self) -> None:
        """Score what is queued for up to a few seconds, then stop; the rest is abandoned
        (counted)."""
        self._closed = True
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), STOP_WAIT_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        left = self._queue.qsize()
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        if left:
            self.stats.abandoned += left
            self._count_sample("abandoned", left)
        for rule in self.rules.rules:
            for scorer in rule.scorers:
                with contextlib.suppress(Exception):
                    await scorer.aclose()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self.score(job.trace_id, job.draw, job.sample)
            except Exception:
                log.exception("online scoring failed for trace %s", job.trace_id)
            finally:
                self._queue.task_done()
                if self.metrics is not None:
                    self.metrics.queue_depth.set(self._queue.qsize())

    async def _tick(self) -> None:
        """Keep the gauges' windows current when no score arrives."""
        while True:
            await asyncio.sleep(TICK_S)
            now = self._clock()
            for (model, metric), window in self._windows.items():
                window.trim(now)
                self._gauge(model, metric, window)

    async def score(self, trace_id: str, draw: Draw, sample: Sample) -> None:
        """Run the drawn rules' scorers on one answer and record what they scored."""
        inputs: list[ScoreInput] = []
        done: set[str] = set()
        kept: list[tuple[CompiledRule, str, ScoreResult]] = []
        for rule in draw.rules:
            for scorer in rule.scorers:
                if scorer.name in done:  # two rules of one model, one metric: scored once
                    continue
                done.add(scorer.name)
                result = await self._run(scorer, sample)
                if result is None:
                    self._outcome(rule, scorer.name, "skipped")
                    continue
                if result.failed or result.value is None:
                    self._outcome(rule, scorer.name, "failed")
                    log.debug("online %s failed on %s: %s", scorer.name, trace_id, result.error)
                    continue
                inputs.append(_input(rule.metrics[scorer.name], scorer.name, trace_id, result))
                kept.append((rule, scorer.name, result))
        self.stats.scored += 1
        if not inputs:
            return
        try:
            await self.recorder.record(inputs, MASTER)
        except OpsgateError as exc:
            log.warning("online scores for trace %s refused: %s", trace_id, exc.message)
            for rule, name, _ in kept:
                self._outcome(rule, name, "refused")
            return
        now = self._clock()
        for rule, name, result in kept:
            self._outcome(rule, name, "recorded")
            assert result.value is not None
            window = self._window(rule.model, name)
            window.add(now, result.value, flagged(result))
            window.trim(now)
            self._gauge(rule.model, name, window)

    async def _run(self, scorer: Scorer, sample: Sample) -> ScoreResult | None:
        """The scorer's result; None when it calls models and this hour's judge budget is
        spent."""
        if scorer.calls_models and not self.cap.allows():
            return None
        try:
            result = await apply(scorer, sample)
        except Exception as exc:  # a plugin's bug fails its score, not the worker
            return ScoreResult.failure(f"{scorer.name} raised {type(exc).__name__}: {exc}")
        if result.cost_micros:
            self.cap.add(result.cost_micros)
            self.stats.judge_cost_micros += result.cost_micros
            if self.metrics is not None:
                self.metrics.judge_cost.inc(result.cost_micros / 1_000_000)
        return result

    def _outcome(self, rule: CompiledRule, metric: str, outcome: str) -> None:
        if outcome == "recorded":
            self.stats.recorded += 1
        elif outcome == "failed":
            self.stats.failed += 1
        elif outcome == "skipped":
            self.stats.skipped += 1
        else:
            self.stats.refused += 1
        if self.metrics is not None:
            self.metrics.scored(rule.model, metric, outcome)

    def _window(self, model: str, metric: str) -> ScoreWindow:
        key = (model, metric)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = ScoreWindow(self.config.online_window)
        window.seconds = self.config.online_window
        return window

    def _gauge(self, model: str, metric: str, window: ScoreWindow) -> None:
        if self.metrics is not None:
            self.metrics.window(model, metric, window.mean, window.flagged, len(window))

    def window(self, model: str, metric: str) -> tuple[float, float, int]:
        """(mean, flagged share, count) of the recent scores of a rule model and metric."""
        found = self._windows.get((model, metric))
        if found is None:
            return math.nan, math.nan, 0
        found.trim(self._clock())
        return found.mean, found.flagged, len(found)


def _input(metric: MetricConfig, name: str, trace_id: str, result: ScoreResult) -> ScoreInput:
    assert result.value is not None
    if metric.type == "boolean":
        value = 1.0 if flagged(result) else 0.0
    else:
        low = 0.0 if metric.min is None else metric.min
        high = 1.0 if metric.max is None else metric.max
        value = min(max(result.value, low), high)
    comment = result.reason[:MAX_COMMENT] if result.reason else None
    return ScoreInput(
        metric=name,
        type=metric.type,
        level="inference",
        trace_id=trace_id,
        value=value,
        comment=comment,
        idempotency_key=f"online:{trace_id}:{name}",
        source="online",
        metadata={"label": result.label} if result.label else {},
    )
