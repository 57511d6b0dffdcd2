"""Metrics for feedback: scores accepted per metric and source, refusals per reason, and the
score writer's queue and writes.

Labels stay bounded: metric names come from the config (an undeclared metric is refused before
it is counted), sources and refusal reasons are fixed sets.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

REFUSALS = (
    "invalid",
    "too_large",
    "unauthenticated",
    "forbidden",
    "not_found",
    "conflict",
    "queue_full",
)
"""Why `POST /v1/feedback` refused a request (one of these, else `other`)."""


class FeedbackMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.scores = Counter(
            "opsgate_feedback_scores",
            "Scores accepted, by metric and source (end_user, api, reviewer, evaluator, online).",
            ["metric", "source"],
            registry=r,
        )
        self.refused = Counter(
            "opsgate_feedback_refused",
            "Feedback requests refused, by reason: invalid, too_large, unauthenticated, "
            "forbidden, not_found, conflict, queue_full.",
            ["reason"],
            registry=r,
        )
        self.written = Counter(
            "opsgate_feedback_written", "Scores the database accepted.", registry=r
        )
        self.store_failures = Counter(
            "opsgate_feedback_store_failures",
            "Score batches that failed because the database was unavailable (retried).",
            registry=r,
        )
        self.queue_depth = Gauge(
            "opsgate_feedback_queue_depth",
            "Scores waiting for the background writer (all live workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, str], Any] = {}

    def accepted(self, metric: str, source: str) -> None:
        """Count one score (the labelled child is looked up once per metric and source)."""
        child = self._children.get((metric, source))
        if child is None:
            child = self._children[(metric, source)] = self.scores.labels(metric, source)
        child.inc()

    def refusal(self, reason: str) -> None:
        self.refused.labels(reason if reason in REFUSALS else "other").inc()
