"""Base vs adapter on the held-back validation split, scored with the evals scorers.

After training, the worker answers every validation prompt twice, greedily (`tuning.generate`):
with the adapter disabled (the base) and with it. Both answers are scored against the expected
answer by the job's scorers, and the job and the adapter record, per scorer, the mean of each,
the delta and how many rows were scored, with a few example rows to read.

Only scorers that need no network and no judge model qualify: rules (`exact`, `contains`,
`regex`, `numeric`, `json`, `json_schema`, `length`, `refusal`) and `embedding` with a local
embedder (`hashing`: a token-overlap similarity of words, word pairs and character trigrams;
`local` or `onnx`: MiniLM). The job's scorers are checked when it is created (an unknown or
unsuitable one is a 400); this module imports no torch, so the gateway can do that check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsgate.evals.scorers import Sample, ScorerConfigError, ScorerSpec, apply, build_scorer
from opsgate.tuning.data import Example

OFFLINE = (
    "exact",
    "contains",
    "regex",
    "numeric",
    "json",
    "json_schema",
    "length",
    "refusal",
    "embedding",
)
"""Scorer types a job may use: none calls a model over the network or a judge."""
LOCAL_EMBEDDERS = ("hashing", "local", "onnx")
MODEL_EMBEDDERS = ("local", "onnx")
"""Embedders that load a model: named at job creation, built only in the worker."""
DEFAULT_SCORERS: list[ScorerSpec] = [
    "exact",
    "contains",
    {"type": "embedding", "name": "overlap", "embedder": "hashing"},
]
SHOWN = 500
"""Characters of an example row's input, expected answer and answers kept in the metrics."""


class EvaluationBody(BaseModel):
    """How a job compares base and adapter (`scorers: []` skips the comparison)."""

    model_config = ConfigDict(extra="forbid")

    scorers: list[str | dict[str, Any]] = Field(
        default_factory=lambda: [s if isinstance(s, str) else dict(s) for s in DEFAULT_SCORERS],
        max_length=16,
        description="evals scorer specs that need no network or judge model",
    )
    max_new_tokens: int = Field(default=32, ge=1, le=1024, description="answer length bound")
    limit: int = Field(default=200, ge=1, le=5000, description="validation rows answered")
    examples: int = Field(default=3, ge=0, le=20, description="example rows kept")


def check_scorers(specs: Sequence[ScorerSpec]) -> list[str]:
    """The scorers' names; `ScorerConfigError` (400) for an unknown, unsuitable or badly
    configured one, or two with one name."""
    names: list[str] = []
    for n, spec in enumerate(specs):
        params: dict[str, Any] = {"type": spec} if isinstance(spec, str) else dict(spec)
        kind = params.get("type")
        if kind not in OFFLINE:
            raise ScorerConfigError(
                f"evaluation.scorers[{n}]: {kind!r} cannot score a tuning job (one of "
                f"{', '.join(OFFLINE)}: no network, no judge model)",
                param="evaluation.scorers",
            )
        embedder = params.get("embedder", "local")
        if kind == "embedding" and embedder not in LOCAL_EMBEDDERS:
            raise ScorerConfigError(
                f"evaluation.scorers[{n}]: embedder {embedder!r} is not local "
                f"(one of {', '.join(LOCAL_EMBEDDERS)})",
                param="evaluation.scorers",
            )
        if kind == "embedding" and embedder in MODEL_EMBEDDERS:
            name = str(params.get("name") or kind)  # its model loads in the worker only
        else:
            name = build_scorer(params).name
        if name in names:
            raise ScorerConfigError(
                f"evaluation.scorers: two scorers named {name!r} (give one a `name`)",
                param="evaluation.scorers",
            )
        names.append(name)
    return names


def text_of(content: Any) -> str:
    """A message's text: its string, or the text parts of a multi-part content."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def question(ex: Example) -> str:
    """What the example asks: its last user message (the whole prompt is in the data)."""
    users = [m for m in ex.prompt if m.get("role") == "user"]
    return text_of((users or ex.prompt)[-1].get("content")) if ex.prompt else ""


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


async def compare(
    examples: Sequence[Example],
    base: Sequence[str],
    adapter: Sequence[str],
    specs: Sequence[ScorerSpec],
    *,
    keep: int = 3,
) -> dict[str, Any]:
    """Score both answer lists against the examples' answers: per scorer, the mean of base
    and adapter, the delta, the rows scored and failed; and `keep` example rows."""
    if not len(examples) == len(base) == len(adapter):
        raise ValueError("one base and one adapter answer per example")
    scores: dict[str, Any] = {}
    for spec in specs:
        scorer = build_scorer(spec)
        try:
            side: dict[str, list[float]] = {"base": [], "adapter": []}
            failed = 0
            for ex, answers in zip(examples, zip(base, adapter, strict=True), strict=True):
                for label, answer in zip(("base", "adapter"), answers, strict=True):
                    sample = Sample(input=question(ex), output=answer, expected=ex.answer)
                    result = await apply(scorer, sample)
                    if result.value is None:
                        failed += 1
                    else:
                        side[label].append(result.value)
        finally:
            await scorer.aclose()
        b, a = _mean(side["base"]), _mean(side["adapter"])
        delta = round(a - b, 4) if a is not None and b is not None else None
        scores[scorer.name] = {
            "base": b,
            "adapter": a,
            "delta": delta,
            "scored": len(side["adapter"]),
            "failed": failed,
        }
    rows = [
        {
            "input": question(ex)[:SHOWN],
            "expected": ex.answer[:SHOWN],
            "base": b[:SHOWN],
            "adapter": a[:SHOWN],
        }
        for ex, b, a in list(zip(examples, base, adapter, strict=True))[:keep]
    ]
    return {"n": len(examples), "scorers": scores, "examples": rows}
