"""Feedback: declared metrics, the one score store every source writes to, feedback tokens.

The store's interface is `ScoreStore` (feedback/scores.py); the gateway's runtime object is
`FeedbackService` (feedback/service.py). Review queues and datasets build on the same store.
"""

from opsgate.feedback.scores import (
    SOURCES,
    MetricTotals,
    RollupQuery,
    RollupRow,
    Score,
    ScoreDimension,
    ScorePage,
    ScoreQuery,
    ScoreSource,
    ScoreStore,
    ScoreValue,
    Target,
)
from opsgate.feedback.scores_sql import SqlScoreStore

__all__ = [
    "SOURCES",
    "MetricTotals",
    "RollupQuery",
    "RollupRow",
    "Score",
    "ScoreDimension",
    "ScorePage",
    "ScoreQuery",
    "ScoreSource",
    "ScoreStore",
    "ScoreValue",
    "SqlScoreStore",
    "Target",
]
