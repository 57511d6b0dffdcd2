"""The data card: what an adapter was trained on, saved next to its weights and in the registry.

The job service writes the first part when it creates the job, from the export it just ran:
the dataset version, the export's filters (PII redaction, exact-duplicate drop, corrections as
the target answer) and counts, the split. The worker adds what needs the base's tokenizer
(token counts of prompts and answers, per side of the split) and the base's fingerprint, writes
it to the job folder when it starts and as `data-card.json` into the adapter's folder when it
finishes; the runner copies it to the job and the adapter's registry row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsgate.tuning.data import Example, Split

CARD_FILE = "data-card.json"
DEDUP = (
    "exact duplicates dropped by the export: two lines with the same messages and answer "
    "(after redaction) are one example"
)


@dataclass(frozen=True, slots=True)
class ExportFacts:
    """What the dataset export did (its report, `feedback.datasets.export`)."""

    export_id: str
    dataset_rows: int
    """Rows in the dataset version."""
    rows_exported: int
    duplicates: int
    skipped: int
    """Rows without an answer to train on, or that could not be decrypted."""
    undecryptable: int
    redactions: int
    corrections: int
    """Rows whose correction (reviewed answer) is the target answer."""


def conversations(examples: list[Example]) -> int:
    return len({ex.conversation_key() for ex in examples})


def first_part(
    *,
    job_id: str,
    dataset: dict[str, Any],
    facts: ExportFacts,
    parts: Split,
    seed: str,
    validation: float,
    created_at: float,
) -> dict[str, Any]:
    """The card as the job service knows it when the job is created."""
    return {
        "object": "tuning.data_card",
        "job_id": job_id,
        "created_at": created_at,
        "dataset": dataset,
        "export": {
            "id": facts.export_id,
            "format": "openai-chat",
            "pii_redaction": True,
            "redactions": facts.redactions,
            "dedup": DEDUP,
            "corrections_used": facts.corrections,
        },
        "counts": {
            "dataset_rows": facts.dataset_rows,
            "rows_exported": facts.rows_exported,
            "duplicates_dropped": facts.duplicates,
            "skipped_without_answer": facts.skipped - facts.undecryptable,
            "undecryptable": facts.undecryptable,
            "malformed": 0,  # a malformed line refuses the job (400), it is never dropped
            "train": len(parts.train),
            "validation": len(parts.validation),
            "conversations": {
                "train": conversations(parts.train),
                "validation": conversations(parts.validation),
            },
        },
        "split": {
            "seed": seed,
            "validation_share": validation,
            "by": "conversation (its first user turn): one never sits on both sides",
        },
    }


def token_counts(
    parts: Split, lengths: Callable[[Example], tuple[int, int]], max_length: int
) -> dict[str, Any]:
    """Prompt and answer tokens per side, as the base's tokenizer counts them for training
    (before truncation), and how many examples `max_length` truncates."""
    out: dict[str, Any] = {"max_length": max_length}
    for side, examples in (("train", parts.train), ("validation", parts.validation)):
        prompt = answer = truncated = 0
        for ex in examples:
            p, a = lengths(ex)
            prompt, answer = prompt + p, answer + a
            truncated += p + a > max_length
        out[side] = {"prompt": prompt, "answer": answer, "truncated": truncated}
    return out


def completed(
    card: dict[str, Any], *, tokens: dict[str, Any], base: dict[str, Any]
) -> dict[str, Any]:
    """The card with the worker's part: token counts and the base it was counted with."""
    return {**card, "tokens": tokens, "base": base}
