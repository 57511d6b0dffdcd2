"""Best-of-n re-ranking: n candidates through the normal provider path, scored by any
evaluation scorer, the best returned (docs/experiments.md)."""

from opsgate.experiments.best_of.plan import (
    HEADER,
    JUDGE_SOURCE,
    BestOfPlan,
    BestOfPolicy,
    build_policies,
    plan_for,
)
from opsgate.experiments.best_of.select import Candidate, Selection, question_of, select

__all__ = [
    "HEADER",
    "JUDGE_SOURCE",
    "BestOfPlan",
    "BestOfPolicy",
    "Candidate",
    "Selection",
    "build_policies",
    "plan_for",
    "question_of",
    "select",
]
