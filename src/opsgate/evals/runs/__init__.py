"""Eval runs: a dataset through targets via the gateway, scored, stored, compared, gated."""

from opsgate.evals.runs.dataset import (
    DatasetRow,
    DatasetSource,
    JsonlDataset,
    each_row,
    open_dataset,
)
from opsgate.evals.runs.gate import GateResult, check, junit, parse_thresholds
from opsgate.evals.runs.runner import EvalRunner, ScoreSink
from opsgate.evals.runs.spec import EvalSpec, EvalSpecError, TargetSpec, load_spec, parse_spec
from opsgate.evals.runs.stats import Estimate, Paired, bootstrap_ci, paired_bootstrap
from opsgate.evals.runs.store import EvalStore, ResultRow, RunInfo
from opsgate.evals.runs.stored import (
    DatasetReader,
    StoredDataset,
    any_team,
    open_stored,
    pinned,
)
from opsgate.evals.runs.summary import Comparison, compare, summarise

__all__ = [
    "Comparison",
    "DatasetReader",
    "DatasetRow",
    "DatasetSource",
    "Estimate",
    "EvalRunner",
    "EvalSpec",
    "EvalSpecError",
    "EvalStore",
    "GateResult",
    "JsonlDataset",
    "Paired",
    "ResultRow",
    "RunInfo",
    "ScoreSink",
    "StoredDataset",
    "TargetSpec",
    "any_team",
    "bootstrap_ci",
    "check",
    "compare",
    "each_row",
    "junit",
    "load_spec",
    "open_dataset",
    "open_stored",
    "paired_bootstrap",
    "parse_spec",
    "parse_thresholds",
    "pinned",
    "summarise",
]
