"""Running an eval: each dataset row through each target via the gateway, then the scorers.

Rows stream from the dataset and at most `concurrency` calls are in flight, so memory stays
flat whatever the dataset size. Results are stored in batches; a run that stops (cancelled,
interrupted, out of budget) keeps them, and `run(resume=RUN_ID)` skips every (target, row)
already stored. A row that cannot be used, a target call that fails, or a scorer missing a
field is a failed result with the reason; the run goes on. The run stops with status
`budget_exceeded` when its cost passes `budget_usd`, or when the gateway refuses a call for
budget (that row is not stored, so a resumed run retries it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opsgate.evals.client import CallError, Completion, GatewayClient
from opsgate.evals.runs.dataset import DatasetRow, DatasetSource, each_row
from opsgate.evals.runs.spec import EvalSpec, EvalSpecError, TargetSpec
from opsgate.evals.runs.store import EvalStore, ResultRow, RunInfo
from opsgate.evals.runs.summary import summarise
from opsgate.evals.runs.targets import request_body
from opsgate.evals.scorers import Sample, Scorer, ScoreResult, apply
from opsgate.store.crypto import BodyCipher

BATCH = 50


class ScoreSink(Protocol):
    """Where scores about traces go besides the run: the one score store, source
    `evaluator` (runs/record.py sends them to the gateway's feedback API)."""

    async def record(self, run: RunInfo, result: ResultRow) -> None: ...

    async def flush(self) -> None: ...


@dataclass(slots=True)
class _Unit:
    row: DatasetRow
    target: TargetSpec


def seal_id(run_id: str, target: str, row_index: int) -> str:
    return f"eval:{run_id}:{target}:{row_index}"


def _score_json(result: ScoreResult) -> dict[str, Any]:
    return {
        "value": result.value,
        "label": result.label,
        "reason": result.reason[:1000],
        "error": result.error,
    }


class EvalRunner:
    def __init__(
        self,
        spec: EvalSpec,
        dataset: DatasetSource,
        scorers: Sequence[Scorer],
        client: GatewayClient,
        store: EvalStore,
        *,
        cipher: BodyCipher | None = None,
        sink: ScoreSink | None = None,
        on_result: Callable[[ResultRow], None] | None = None,
    ) -> None:
        names = [s.name for s in scorers]
        if len(set(names)) != len(names):
            raise EvalSpecError("two scorers report the same name: give one a `name`")
        self.spec, self.dataset, self.scorers = spec, dataset, list(scorers)
        self.client, self.store, self.cipher, self.sink = client, store, cipher, sink
        self.on_result = on_result
        self.cost_micros = 0
        self.stop_reason: str | None = None
        self._buffer: list[ResultRow] = []

    def cancel(self) -> None:
        """Stop starting new rows; the ones in flight finish and are stored."""
        self.stop_reason = self.stop_reason or "cancelled"

    async def create(
        self, *, owner: str | None = None, team_id: str | None = None, user_id: str | None = None
    ) -> RunInfo:
        spec = self.spec.model_dump(mode="json", exclude_none=True)
        return await self.store.create(self.spec.name, spec, self.dataset.ref, owner=owner,
                                       team_id=team_id, user_id=user_id)  # fmt: skip

    async def run(self, run: RunInfo) -> RunInfo:
        """Execute (or resume) `run` to its end; returns it with its status and summary."""
        done = await self.store.done_keys(run.id)
        self.cost_micros = run.cost_micros
        self.stop_reason = None
        await self.store.set_status(run.id, "running")
        try:
            await self._execute(run, done)
        except BaseException:
            await self._flush()
            await self.store.set_status(run.id, "cancelled", error="interrupted")
            raise
        await self._flush()
        summary = await summarise(self.store, run.id, [s.name for s in self.scorers])
        await self.store.set_status(run.id, self.stop_reason or "completed", summary=summary)
        final = await self.store.get(run.id)
        assert final is not None
        return final

    async def _execute(self, run: RunInfo, done: set[tuple[str, int]]) -> None:
        pending: set[asyncio.Task[None]] = set()
        limit = self.spec.concurrency
        try:
            async for row in each_row(self.dataset):
                for target in self.spec.targets:
                    if (target.label, row.index) in done:
                        continue
                    while len(pending) >= limit:
                        finished, pending = await asyncio.wait(
                            pending, return_when=asyncio.FIRST_COMPLETED
                        )
                        for task in finished:
                            task.result()
                    if self.stop_reason is not None:
                        return
                    pending.add(asyncio.create_task(self._unit(run, _Unit(row, target))))
        finally:
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _unit(self, run: RunInfo, unit: _Unit) -> None:
        row, label = unit.row, unit.target.label

        def result(status: str, **fields: Any) -> ResultRow:
            return ResultRow(run.id, label, row.index, status, row_id=row.id, **fields)

        if row.error is not None:
            failed = result("failed", error=row.error, scores=self._all_failed(row.error))
            await self._keep(run, failed)
            return
        answer = await self.client.complete(request_body(self.spec, unit.target, row))
        if isinstance(answer, CallError):
            if answer.budget_exceeded:
                self.stop_reason = "budget_exceeded"
                return
            if answer.status == 0 and self.stop_reason is not None:
                return  # cut off by the stop (a gateway shutting down): resume retries it
            error = f"target call failed: {answer.status} {answer.message}"
            failed = result(
                "failed", error=error, trace_id=answer.trace_id, scores=self._all_failed(error)
            )
            await self._keep(run, failed)
            return
        scores, cost, tokens = await self._score(row, answer)
        done = result(
            "ok",
            scores=scores,
            trace_id=answer.trace_id,
            latency_ms=answer.latency_s * 1000,
            cost_micros=answer.cost_micros + cost,
            tokens=answer.tokens + tokens,
            body=self._seal(run.id, label, row.index, answer),
        )
        await self._keep(run, done)

    def _all_failed(self, error: str) -> dict[str, dict[str, Any]]:
        return {s.name: _score_json(ScoreResult.failure(error)) for s in self.scorers}

    async def _score(
        self, row: DatasetRow, answer: Completion
    ) -> tuple[dict[str, dict[str, Any]], int, int]:
        sample = Sample(row.input, answer.text, row.expected, row.context, row.row)
        results = await asyncio.gather(*(self._one(s, sample) for s in self.scorers))
        scores = {s.name: _score_json(r) for s, r in zip(self.scorers, results, strict=True)}
        return scores, sum(r.cost_micros for r in results), sum(r.tokens for r in results)

    @staticmethod
    async def _one(scorer: Scorer, sample: Sample) -> ScoreResult:
        try:
            return await apply(scorer, sample)
        except Exception as exc:  # a plugin's bug fails its score, not the run
            return ScoreResult.failure(f"{scorer.name} raised {type(exc).__name__}: {exc}")

    def _seal(self, run_id: str, target: str, index: int, answer: Completion) -> bytes | None:
        if self.cipher is None or not self.spec.store_outputs:
            return None
        body = json.dumps({"output": answer.text}).encode()
        return self.cipher.seal(body, seal_id(run_id, target, index), "response_body")

    async def _keep(self, run: RunInfo, result: ResultRow) -> None:
        self.cost_micros += result.cost_micros
        budget = self.spec.budget_usd
        if budget is not None and self.cost_micros > budget * 1e6:
            self.stop_reason = "budget_exceeded"
        self._buffer.append(result)
        if self.on_result is not None:
            self.on_result(result)
        if self.sink is not None and result.trace_id is not None:
            await self.sink.record(run, result)
        if len(self._buffer) >= BATCH:
            await self._flush()

    async def _flush(self) -> None:
        batch, self._buffer = self._buffer, []
        await self.store.add_results(batch)
        if batch and self.stop_reason is None:
            stored = await self.store.get(batch[0].run_id)
            if stored is not None and stored.status == "cancelled":  # cancelled elsewhere
                self.stop_reason = "cancelled"
        if self.sink is not None:
            await self.sink.flush()
