"""The rules of `evals.online`, compiled: which models they watch and the scorers they run.

Sampling happens when a trace is published: `RuleSet.draw` draws one uniform number per trace
and every rule of the trace's model whose `sample` exceeds it takes the trace, so a rule at 5%
takes each answer with probability 0.05 whatever the other rules say. Only successful chat
answers are drawn, and never the online judges' own calls (their metadata `source` is
`JUDGE_SOURCE`), so a rule over `*` cannot feed on itself.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from opsgate.config.evals import EvalsConfig, OnlineRule
from opsgate.config.feedback import MetricConfig
from opsgate.config.loader import ConfigError
from opsgate.evals.client import ChatClient
from opsgate.evals.scorers import Scorer, ScorerConfigError, ScorerResources, build_scorer
from opsgate.trace import TraceRecord

JUDGE_SOURCE = "online_eval"
"""The `source` metadata of the online judges' own requests (never sampled)."""
_MODEL_MEMORY = 4096


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int
    config: OnlineRule
    scorers: tuple[Scorer, ...]
    metrics: Mapping[str, MetricConfig]
    """The declared metric of each scorer, by scorer name."""

    @property
    def model(self) -> str:
        """The rule's model as configured: a bounded label for metrics."""
        return self.config.model

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.config.model)


@dataclass(frozen=True, slots=True)
class Draw:
    """The rules that took one trace."""

    rules: tuple[CompiledRule, ...]


def compile_rules(
    config: EvalsConfig,
    declared: Mapping[str, MetricConfig],
    judge: ChatClient | None,
    *,
    source: str = "<config>",
) -> list[CompiledRule]:
    """Build every rule's scorers; a scorer that cannot be built stops start-up (or a reload)
    with its place in the file."""
    rules = []
    problems = []
    for i, rule in enumerate(config.online):
        resources = ScorerResources(
            client=judge, judge_model=rule.judge_model or config.judge_model
        )
        scorers = []
        for j, spec in enumerate(rule.scorers):
            try:
                scorers.append(build_scorer(spec, resources))
            except ScorerConfigError as exc:
                problems.append(f"evals.online[{i}].scorers[{j}]: {exc.message}")
        names = {s.name for s in scorers}
        metrics = {name: declared[name] for name in names if name in declared}
        if len(metrics) != len(names):
            missing = sorted(names - set(metrics))
            problems.append(f"evals.online[{i}].scorers: undeclared metric {missing[0]!r}")
        rules.append(CompiledRule(i, rule, tuple(scorers), metrics))
    if problems:
        raise ConfigError(source, problems)
    return rules


class RuleSet:
    def __init__(
        self, rules: Sequence[CompiledRule], rng: Callable[[], float] = random.random
    ) -> None:
        self.rules = tuple(rules)
        self._rng = rng
        self._by_model: dict[str, tuple[CompiledRule, ...]] = {}

    def matching(self, model: str) -> tuple[CompiledRule, ...]:
        """The rules of `model` (remembered per name; clients' made-up names cannot grow it
        past a bound)."""
        found = self._by_model.get(model)
        if found is None:
            found = tuple(r for r in self.rules if r.matches(model))
            if len(self._by_model) >= _MODEL_MEMORY:
                self._by_model.clear()
            self._by_model[model] = found
        return found

    def watches(self, model: str) -> bool:
        return bool(self.rules) and bool(self.matching(model))

    def draw(self, trace: TraceRecord) -> Draw | None:
        if not self.rules or trace.endpoint != "chat" or trace.status != "ok":
            return None
        rules = self.matching(trace.model_requested)
        if not rules or trace.metadata.get("source") == JUDGE_SOURCE:
            return None
        u = self._rng()
        chosen = tuple(r for r in rules if u < r.config.sample)
        return Draw(chosen) if chosen else None
