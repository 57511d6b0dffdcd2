"""Scorers: rules, embedding similarity, LLM judges, the hallucination detector, plugins."""

from opsgate.evals.scorers.base import Sample, Scorer, ScoreResult, apply
from opsgate.evals.scorers.errors import ScorerConfigError
from opsgate.evals.scorers.judge import Judge, Pairwise
from opsgate.evals.scorers.registry import (
    ScorerResources,
    ScorerSpec,
    build_scorer,
    register_scorer,
    scorer_kinds,
)
from opsgate.evals.scorers.rules import Contains, Exact, JsonSchema, Numeric, Regex
from opsgate.evals.scorers.similarity import EmbeddingSimilarity
from opsgate.evals.scorers.support import Hallucination

__all__ = [
    "Contains",
    "EmbeddingSimilarity",
    "Exact",
    "Hallucination",
    "JsonSchema",
    "Judge",
    "Numeric",
    "Pairwise",
    "Regex",
    "Sample",
    "ScoreResult",
    "Scorer",
    "ScorerConfigError",
    "ScorerResources",
    "ScorerSpec",
    "apply",
    "build_scorer",
    "register_scorer",
    "scorer_kinds",
]
