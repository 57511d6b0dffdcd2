"""The teacher's part of a distillation: its answers to a dataset version's inputs, through the
gateway, filtered by scorers.

Inputs are the dataset rows' conversations up to the answer; a stable hash of each input puts
it in the held-out share (compared later, never trained on) or the training share. Without a
dataset the teacher first writes the inputs itself, from seed topics (`Teacher.inputs`). The
teacher is called through the gateway's own API with the caller's key (`GatewayClient`, as eval
runs call models), so each call is routed, traced, costed, budgeted and cached like any other,
at most `concurrency` at a time. A failed call is counted and its reason kept, never dropped
silently; an answer to a training input is kept only when it passes every filter scorer
(value >= 0.5), and the drops are counted per filter.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from opsgate.evals.client import CallError, Completion, GatewayClient
from opsgate.evals.runs import DatasetRow, StoredDataset
from opsgate.evals.scorers import Sample, Scorer, apply

PASS = 0.5
MAX_ERRORS_KEPT = 5


@dataclass(slots=True)
class Input:
    index: int
    messages: list[dict[str, Any]]
    """The conversation up to the answer (what the teacher and the student are asked)."""
    question: str | None
    expected: str | None
    held_out: bool
    end_user: str | None = None
    """The source row's end user: the distilled row keeps it, so an erasure reaches it (and
    taints the student's job) as it reaches the source row."""


@dataclass(slots=True)
class Answer:
    input: Input
    text: str
    latency_s: float
    cost_usd: float


@dataclass(slots=True)
class TeacherResult:
    kept: list[Answer] = field(default_factory=list)
    held_out: list[Answer] = field(default_factory=list)
    calls: int = 0
    failed: int = 0
    held_out_failed: int = 0
    errors: list[str] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    budget_exceeded: bool = False

    def counts(self) -> dict[str, Any]:
        """Every training input is kept, dropped (by a filter) or failed (the call)."""
        return {
            "calls": self.calls,
            "failed": self.failed,
            "errors": self.errors,
            "train_inputs": self.calls - len(self.held_out) - self.held_out_failed,
            "kept": len(self.kept),
            "dropped": sum(self.dropped.values()),
            "dropped_by": dict(self.dropped),
            "train_failed": self.failed - self.held_out_failed,
            "held_out_answers": len(self.held_out),
            "held_out_failed": self.held_out_failed,
        }


def _prompt(row: DatasetRow) -> list[dict[str, Any]]:
    messages = [dict(m) for m in row.messages or []]
    while messages and messages[-1].get("role") == "assistant":
        messages.pop()  # the answer the row was made with: the teacher gives its own
    if not messages and row.input:
        messages = [{"role": "user", "content": row.input}]
    return messages


def _held_out(messages: list[dict[str, Any]], seed: str, share: float) -> bool:
    digest = hashlib.blake2b(seed.encode() + orjson.dumps(messages), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


async def read_inputs(dataset: StoredDataset, share: float, limit: int) -> list[Input]:
    """The dataset version's inputs (rows that cannot be opened or hold no question are left
    out), each marked held out or not; at least one of each when there are two or more."""
    seed = f"{dataset.info.id}@{dataset.version}"
    owners: dict[str, str] = {}
    async for batch in dataset.reader.store.batches(dataset.info.id, dataset.version):
        owners.update((r.id, r.end_user) for r in batch if r.end_user)
    inputs: list[Input] = []
    async for row in dataset.rows():
        if len(inputs) >= limit:
            break
        messages = _prompt(row) if row.error is None else []
        if messages:
            held = _held_out(messages, seed, share)
            owner = owners.get(row.id or "")
            inputs.append(Input(len(inputs), messages, row.input, row.expected, held, owner))
    _both_sides(inputs)
    return inputs


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\(?\d+[.):])\s*")
ASK_FOR_INPUTS = (
    "Write {n} different questions or requests a user could send about: {topic}\n"
    "One per line, no numbering, nothing else."
)


def questions_in(text: str, n: int) -> list[str]:
    """The first `n` distinct non-empty lines of a teacher's list, bullets and numbers cut."""
    out: list[str] = []
    for line in text.splitlines():
        question = _BULLET.sub("", line).strip()
        if question and question not in out:
            out.append(question)
    return out[:n]


def inputs_from(questions: list[str], share: float) -> list[Input]:
    """Generated questions as inputs (one user turn, no expected answer), held out by hash."""
    inputs: list[Input] = []
    for question in dict.fromkeys(questions):  # the same question from two topics: once
        messages = [{"role": "user", "content": question}]
        held = _held_out(messages, "topics", share)
        inputs.append(Input(len(inputs), messages, question, None, held))
    _both_sides(inputs)
    return inputs


def _both_sides(inputs: list[Input]) -> None:
    if len(inputs) >= 2 and all(i.held_out for i in inputs):
        inputs[-1].held_out = False
    if len(inputs) >= 2 and not any(i.held_out for i in inputs):
        inputs[-1].held_out = True


class Teacher:
    def __init__(
        self, client: GatewayClient, model: str, params: dict[str, Any], filters: list[Scorer]
    ) -> None:
        self.client, self.model, self.params, self.filters = client, model, params, filters

    async def answer_all(self, inputs: list[Input]) -> TeacherResult:
        result = TeacherResult()
        answers = await asyncio.gather(*(self._ask(i) for i in inputs))
        for item, answer in zip(inputs, answers, strict=True):
            result.calls += 1
            if isinstance(answer, CallError):
                result.failed += 1
                result.held_out_failed += int(item.held_out)
                result.budget_exceeded |= answer.budget_exceeded
                if len(result.errors) < MAX_ERRORS_KEPT:
                    result.errors.append(f"input {item.index}: {answer.status} {answer.message}")
                continue
            kept = Answer(item, answer.text, answer.latency_s, answer.cost_micros / 1e6)
            if item.held_out:
                result.held_out.append(kept)
                continue
            failed = await self._filter(item, answer.text)
            if failed is None:
                result.kept.append(kept)
            else:
                result.dropped[failed] += 1
        return result

    async def inputs(
        self, topics: list[str], per_topic: int, share: float
    ) -> tuple[list[Input], list[str]]:
        """Inputs the teacher writes: `per_topic` questions per seed topic (one call each);
        the failed calls' reasons."""
        asked = [
            self.client.chat(
                self.model,
                [{"role": "user", "content": ASK_FOR_INPUTS.format(n=per_topic, topic=topic)}],
                **self.params,
            )
            for topic in topics
        ]
        questions: list[str] = []
        errors: list[str] = []
        for topic, answer in zip(topics, await asyncio.gather(*asked), strict=True):
            if isinstance(answer, CallError):
                errors.append(f"topic {topic[:80]!r}: {answer.status} {answer.message}")
            else:
                questions.extend(questions_in(answer.text, per_topic))
        return inputs_from(questions, share), errors

    async def _ask(self, item: Input) -> Completion | CallError:
        """The call carries the source row's end user (`user`), so its trace is theirs too."""
        params = self.params
        if item.end_user is not None and "user" not in params:
            params = {**params, "user": item.end_user}
        return await self.client.chat(self.model, item.messages, **params)

    async def _filter(self, item: Input, text: str) -> str | None:
        """The first filter the answer fails (a scorer error fails it too), or None."""
        sample = Sample(item.question, text, item.expected)
        for scorer in self.filters:
            try:
                score = await apply(scorer, sample)
            except Exception:  # a plugin's bug drops the answer under its name
                return scorer.name
            if score.value is None or score.value < PASS:
                return scorer.name
        return None


def training_rows(kept: list[Answer]) -> list[dict[str, Any]]:
    """The kept pairs as dataset rows (the import's row form), with their end users."""
    rows: list[dict[str, Any]] = []
    for a in kept:
        row: dict[str, Any] = {"messages": a.input.messages, "output": a.text}
        if a.input.end_user is not None:
            row["end_user"] = a.input.end_user
        rows.append(row)
    return rows
