"""Eval scores into the one score store: `POST /v1/feedback` with source `evaluator`.

Opt-in per scorer (`record_scores` in the eval file), because a score store metric must be
declared in the gateway's config (`feedback.metrics`, type float): each (row, scorer) with a
trace id becomes a score about that trace, idempotent on `<run>:<target>:<row>:<scorer>`, so
a resumed run never counts one twice. A refused batch is counted and reported; it never stops
the run (the run's own results are already stored).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsgate.evals.client import GatewayClient
from opsgate.evals.runs.store import ResultRow, RunInfo

BATCH = 50


class FeedbackSink:
    """A `ScoreSink` that sends scores to the gateway's feedback API."""

    def __init__(self, client: GatewayClient, metrics: Mapping[str, str]) -> None:
        self.client = client
        self.metrics = dict(metrics)
        """scorer name -> declared metric name"""
        self.sent = 0
        self.refused = 0
        self.first_error: str | None = None
        self._pending: list[dict[str, Any]] = []

    async def record(self, run: RunInfo, result: ResultRow) -> None:
        for scorer, metric in self.metrics.items():
            score = result.scores.get(scorer) or {}
            if score.get("value") is None or result.trace_id is None:
                continue
            key = f"{run.id}:{result.target}:{result.row_index}:{scorer}"
            self._pending.append({
                "metric": metric, "trace_id": result.trace_id, "value": score["value"],
                "source": "evaluator", "idempotency_key": key,
                "metadata": {"eval_run": run.id, "eval_target": result.target},
            })  # fmt: skip
        if len(self._pending) >= BATCH:
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        error = await self.client.post_json("/feedback", {"scores": batch})
        if error is None:
            self.sent += len(batch)
            return
        self.refused += len(batch)
        self.first_error = self.first_error or f"{error.status} {error.message}"
