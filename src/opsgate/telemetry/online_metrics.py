"""Metrics of online evaluation: answers drawn, scorer outcomes, judge spend, and gauges of the
recent online scores per rule and metric (what an alert such as "hallucination rate over 10%
for 15 minutes" watches).

Labels stay bounded: `model` is a rule's model as written in the config (a name or a glob, not
what clients typed), `metric` a declared metric, `outcome` a fixed set.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

SAMPLE_OUTCOMES = ("queued", "dropped", "abandoned")
SCORE_OUTCOMES = ("recorded", "failed", "skipped", "refused")


class OnlineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.samples = Counter(
            "opsgate_online_samples",
            "Answers drawn for online scoring, by outcome: queued, dropped (the queue was "
            "full), abandoned (the gateway stopped before scoring them).",
            ["outcome"],
            registry=r,
        )
        self.scores = Counter(
            "opsgate_online_scores",
            "Online scorer results by rule model, metric and outcome: recorded, failed (a field "
            "missing, a judge error), skipped (the hourly judge cost cap), refused (the score "
            "store refused it).",
            ["model", "metric", "outcome"],
            registry=r,
        )
        self.judge_cost = Counter(
            "opsgate_online_judge_cost_usd", "Cost of online judge calls in USD.", registry=r
        )
        self.queue_depth = Gauge(
            "opsgate_online_queue_depth",
            "Sampled answers waiting to be scored (all live workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.score = Gauge(
            "opsgate_online_score",
            "Mean online score (0..1, higher is better) over the last evals.online_window "
            "seconds, by rule model and metric; NaN with no score in the window.",
            ["model", "metric"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.flagged = Gauge(
            "opsgate_online_flagged_ratio",
            "Share of online-scored answers flagged (a hallucination, a failed rule, a judge "
            "score under 0.5) over the last evals.online_window seconds, by rule model and "
            "metric; NaN with no score in the window.",
            ["model", "metric"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.window_scores = Gauge(
            "opsgate_online_window_scores",
            "Online scores in the gauges' window, by rule model and metric.",
            ["model", "metric"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self._children: dict[tuple[str, str, str], Any] = {}

    def scored(self, model: str, metric: str, outcome: str) -> None:
        key = (model, metric, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.scores.labels(model, metric, outcome)
        child.inc()

    def window(self, model: str, metric: str, mean: float, flagged: float, count: int) -> None:
        self.score.labels(model, metric).set(mean)
        self.flagged.labels(model, metric).set(flagged)
        self.window_scores.labels(model, metric).set(count)
