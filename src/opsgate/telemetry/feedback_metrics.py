"""Metrics for feedback: scores accepted per metric and source, refusals per reason, and the
score writer's queue and writes.

Labels stay bounded: metric names come from the config (an undeclared metric is refused before
it is counted), sources and refusal reasons are fixed sets.
"""

from __future__ import annotations

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

    def accepted(self, metric: str, source: str) -> None:
        self.scores.labels(metric, source).inc()

    def refusal(self, reason: str) -> None:
        self.refused.labels(reason if reason in REFUSALS else "other").inc()
