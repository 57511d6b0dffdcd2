"""Online evaluation: a share of live answers scored in the background, never on the request
path, into the one score store with source `online` (docs/evals.md, "Online evaluation").

The trace publisher asks `OnlineEvaluator.draw` whether a finished trace is sampled and hands the
sampled ones to `submit`; a bounded queue feeds a few background workers that run the rules'
scorers (judges through the gateway's own chat pipeline, capped in dollars per hour) and record
the scores through `FeedbackService.record`.
"""

from opsgate.evals.online.cap import HourlyCap
from opsgate.evals.online.evaluator import OnlineEvaluator, OnlineStats, Recorder
from opsgate.evals.online.rules import JUDGE_SOURCE, CompiledRule, Draw, RuleSet, compile_rules
from opsgate.evals.online.sample import sample_from
from opsgate.evals.online.window import ScoreWindow

__all__ = [
    "JUDGE_SOURCE",
    "CompiledRule",
    "Draw",
    "HourlyCap",
    "OnlineEvaluator",
    "OnlineStats",
    "Recorder",
    "RuleSet",
    "ScoreWindow",
    "compile_rules",
    "sample_from",
]
