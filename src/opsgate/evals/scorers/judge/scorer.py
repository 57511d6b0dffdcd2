"""LLM-as-judge scorers: a gateway model reads a versioned template and answers in JSON.

An unreadable answer is asked for once more (with a reminder); a second one, or a call that
fails after the client's retries, is a failed result, never an exception. The pairwise judge
asks twice with the answers swapped, so a judge that prefers whatever comes first cannot
decide: only a winner in both orders wins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opsgate.evals.client import CallError, ChatClient, Completion
from opsgate.evals.scorers.base import Sample, Scorer, ScoreResult
from opsgate.evals.scorers.errors import ScorerConfigError
from opsgate.evals.scorers.judge.parse import UnparseableAnswer, Verdict, parse_score, parse_winner
from opsgate.evals.scorers.judge.templates import REMINDER, JudgeTemplate, template

Parser = Callable[[str], Verdict]


@dataclass(slots=True)
class Asked:
    verdict: Verdict | None
    error: str | None
    cost_micros: int
    tokens: int


class JudgeCall:
    """One judgement through the gateway: render, call, parse, and retry once if unreadable."""

    def __init__(
        self, client: ChatClient, model: str, tpl: JudgeTemplate, params: Mapping[str, Any]
    ) -> None:
        self.client, self.model, self.template = client, model, tpl
        self.params = {"temperature": 0, **params}

    async def ask(self, values: Mapping[str, str], parse: Parser) -> Asked:
        messages: list[dict[str, str]] = self.template.messages(values)
        cost = tokens = 0
        problem = ""
        for attempt in range(2):
            answer = await self.client.chat(self.model, messages, **self.params)
            if isinstance(answer, CallError):
                return Asked(
                    None, f"judge call failed: {answer.status} {answer.message}", cost, tokens
                )
            cost, tokens = cost + answer.cost_micros, tokens + answer.tokens
            try:
                return Asked(parse(answer.text), None, cost, tokens)
            except UnparseableAnswer as exc:
                problem = str(exc)
            if attempt == 0:
                messages = [*messages, _assistant(answer), {"role": "user", "content": REMINDER}]
        return Asked(None, f"judge answer unparseable after a retry: {problem}", cost, tokens)


def _assistant(answer: Completion) -> dict[str, str]:
    return {"role": "assistant", "content": answer.text}


def _values(sample: Sample, rubric: str) -> dict[str, str]:
    values = {k: str(v) for k, v in sample.row.items() if isinstance(v, str | int | float)}
    for name in ("input", "output", "expected", "context"):
        if (value := sample.get(name)) is not None:
            values[name] = str(value)
    values["rubric"] = rubric
    return values


class Judge(Scorer):
    """A 1-5 judgement with a template (`faithfulness`, `relevance`, `correctness`,
    `toxicity`, `rubric`), normalised to [0, 1]."""

    kind = "judge"
    calls_models = True

    def __init__(
        self,
        client: ChatClient,
        name: str | None = None,
        *,
        template: str,
        model: str,
        rubric: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        tpl = _template(template)
        if tpl.pairwise:
            raise ScorerConfigError("judge: use type `pairwise` for the pairwise template")
        if tpl.name == "rubric" and not rubric.strip():
            raise ScorerConfigError("judge: the rubric template needs `rubric`")
        super().__init__(name or tpl.name)
        self.call = JudgeCall(client, model, tpl, params or {})
        self.needs = tpl.needs
        self.rubric = rubric

    @property
    def version(self) -> str:
        return self.call.template.ref

    async def score(self, sample: Sample) -> ScoreResult:
        asked = await self.call.ask(_values(sample, self.rubric), parse_score)
        if asked.verdict is None:
            return ScoreResult(None, error=asked.error, cost_micros=asked.cost_micros,
                               tokens=asked.tokens)  # fmt: skip
        v = asked.verdict
        return ScoreResult(v.value, None, v.reasoning, None, asked.cost_micros, asked.tokens)


class Pairwise(Scorer):
    """The output against the row's `expected` answer (a baseline): 1 when the judge prefers
    the output in both orders, 0 when it prefers the baseline in both, else 0.5 (a tie or
    an order-dependent judge)."""

    kind = "pairwise"
    calls_models = True
    needs = ("input", "output", "expected")

    def __init__(
        self,
        client: ChatClient,
        name: str | None = None,
        *,
        model: str,
        template: str = "pairwise",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        tpl = _template(template)
        if not tpl.pairwise:
            raise ScorerConfigError(f"pairwise: {tpl.ref} is not a pairwise template")
        super().__init__(name)
        self.call = JudgeCall(client, model, tpl, params or {})

    async def compare(self, question: str, first: str, second: str) -> ScoreResult:
        """1 / 0 / 0.5 for `first` against `second` (label `win`, `loss`, `tie`)."""
        base = {"input": question}
        forward = await self.call.ask({**base, "output_a": first, "output_b": second},
                                      parse_winner)  # fmt: skip
        backward = await self.call.ask({**base, "output_a": second, "output_b": first},
                                       parse_winner)  # fmt: skip
        cost = forward.cost_micros + backward.cost_micros
        tokens = forward.tokens + backward.tokens
        if forward.verdict is None or backward.verdict is None:
            error = forward.error or backward.error
            return ScoreResult(None, error=error, cost_micros=cost, tokens=tokens)
        one, two = forward.verdict.winner, backward.verdict.winner
        if one == "A" and two == "B":
            value, label = 1.0, "win"
        elif one == "B" and two == "A":
            value, label = 0.0, "loss"
        else:
            value, label = 0.5, "tie"
        reason = f"A/B: {one}, swapped: {two}. {forward.verdict.reasoning}".strip()
        return ScoreResult(value, label, reason, None, cost, tokens)

    async def score(self, sample: Sample) -> ScoreResult:
        return await self.compare(str(sample.input), str(sample.output), str(sample.expected))


def _template(ref: str) -> JudgeTemplate:
    if not isinstance(ref, str):
        raise ScorerConfigError("judge: `template` must be a string like `faithfulness@1`")
    return template(ref)
