"""LLM-as-judge scorers and their versioned templates."""

from opsgate.evals.scorers.judge.parse import UnparseableAnswer, Verdict, parse_score, parse_winner
from opsgate.evals.scorers.judge.scorer import Judge, Pairwise
from opsgate.evals.scorers.judge.templates import TEMPLATES, JudgeTemplate, template

__all__ = [
    "TEMPLATES",
    "Judge",
    "JudgeTemplate",
    "Pairwise",
    "UnparseableAnswer",
    "Verdict",
    "parse_score",
    "parse_winner",
    "template",
]
