"""Training data from an `openai-chat` export: checked, deduplicated, split.

The export (feedback datasets: redacted, exact duplicates dropped) gives one JSON line per
example. Here the lines are checked before any training starts (a malformed line or too few
examples is a clear error, not a failed job an hour later) and split into train and validation
so that one conversation never sits on both sides: the split is decided by a hash of the
conversation's prompt (every message but the final answer), so the same prompt with two
answers, or a conversation and its continuation, land together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from opsgate.types import JSONObject


class TrainingDataError(ValueError):
    """The data cannot train a model; the message says which line and why."""


@dataclass(frozen=True, slots=True)
class Example:
    messages: list[JSONObject]
    """The prompt messages followed by the target answer (an assistant message)."""

    @property
    def prompt(self) -> list[JSONObject]:
        return self.messages[:-1]

    @property
    def answer(self) -> str:
        return str(self.messages[-1].get("content") or "")

    def conversation_key(self) -> str:
        """The first user turn: a conversation and its continuations share it."""
        first = next((m for m in self.messages if m.get("role") == "user"), self.messages[0])
        return hashlib.blake2b(orjson.dumps(first.get("content")), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Split:
    train: list[Example]
    validation: list[Example]


def parse_lines(lines: Iterable[bytes | str], *, min_examples: int = 4) -> list[Example]:
    """Check every line of an `openai-chat` JSONL export and return its examples."""
    examples: list[Example] = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise TrainingDataError(f"line {n}: not JSON ({exc})") from None
        messages = line.get("messages") if isinstance(line, dict) else None
        if not isinstance(messages, list) or len(messages) < 2:
            raise TrainingDataError(f"line {n}: 'messages' must be a list of 2 or more messages")
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise TrainingDataError(f"line {n}: every message needs a 'role'")
        last = messages[-1]
        if last.get("role") != "assistant" or not isinstance(last.get("content"), str):
            raise TrainingDataError(f"line {n}: the last message must be the assistant's answer")
        examples.append(Example(messages))
    if len(examples) < min_examples:
        raise TrainingDataError(
            f"{len(examples)} examples: at least {min_examples} are needed to train and validate"
        )
    return examples


def split(examples: list[Example], validation: float = 0.2, *, seed: str = "") -> Split:
    """Hash each conversation into train or validation (stable across runs and machines)."""
    train: list[Example] = []
    held: list[Example] = []
    for ex in examples:
        digest = hashlib.blake2b(f"{seed}:{ex.conversation_key()}".encode(), digest_size=8)
        share = int.from_bytes(digest.digest(), "big") / 2**64
        (held if share < validation else train).append(ex)
    if not train or not held:  # tiny sets: keep both sides non-empty, conversations intact
        keys = sorted({ex.conversation_key() for ex in examples})
        if len(keys) < 2:
            raise TrainingDataError("every example is one conversation: nothing to validate on")
        held_keys = set(keys[: max(1, round(len(keys) * validation))])
        train = [ex for ex in examples if ex.conversation_key() not in held_keys]
        held = [ex for ex in examples if ex.conversation_key() in held_keys]
    return Split(train, held)
