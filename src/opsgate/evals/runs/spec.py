"""An eval file (`evals/support.yaml`): a dataset, one or more targets, the scorers.

name: support
dataset: support.jsonl            # a JSONL file, relative to this file
targets:
  - model: gpt-4o-mini
  - prompt: support-triage@7      # a prompt version (or @production), rendered by the gateway
scorers:
  - exact
  - {type: judge, template: faithfulness, model: judge-model}
budget_usd: 2.0                   # stop with status budget_exceeded past this cost
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opsgate.errors import BadRequestError

ScorerSpecField = str | dict[str, Any]


class EvalSpecError(BadRequestError):
    """The eval file is missing, not YAML, or does not match the schema (400 at the API)."""

    default_code = "invalid_eval_spec"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldNames(_Strict):
    """Which keys of a dataset row hold the sample's fields."""

    id: str = "id"
    input: str = "input"
    expected: str = "expected"
    context: str = "context"
    messages: str = "messages"
    variables: str = "variables"


class DatasetSpec(_Strict):
    """A JSONL `file` (the CLI), inline `rows` (the admin API), or a stored dataset by
    `name` (and `version`)."""

    file: str | None = None
    rows: list[dict[str, Any]] | None = Field(default=None, min_length=1)
    name: str | None = None
    version: int | None = Field(default=None, ge=1)
    fields: FieldNames = Field(default_factory=FieldNames)
    limit: int | None = Field(default=None, ge=1, description="only the first N rows")

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if sum(x is not None for x in (self.file, self.rows, self.name)) != 1:
            raise ValueError("a dataset is one of a `file`, `rows` or a `name`")
        return self

    @property
    def ref(self) -> str:
        if self.file is not None:
            return self.file
        if self.rows is not None:
            return f"inline ({len(self.rows)} rows)"
        return f"{self.name}@{self.version}" if self.version else str(self.name)


class TargetSpec(_Strict):
    """A `model`, or a `prompt` version (`name@7`, `name@production`) the gateway renders
    with the row's `variables`; `params` are added to each request."""

    model: str | None = None
    prompt: str | None = None
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> TargetSpec:
        if (self.model is None) == (self.prompt is None):
            raise ValueError("a target is either a `model` or a `prompt`")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return self.model if self.model is not None else f"prompt:{self.prompt}"


class EvalSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    dataset: DatasetSpec
    targets: list[TargetSpec] = Field(min_length=1, max_length=16)
    scorers: list[ScorerSpecField] = Field(min_length=1, max_length=32)
    judge_model: str | None = None
    """The default `model` of judge scorers."""
    system: str | None = None
    """A system message put before each row's input (model targets)."""
    params: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = Field(default=8, ge=1, le=256)
    budget_usd: float | None = Field(default=None, gt=0)
    store_outputs: bool = True
    """Keep each output (sealed with the gateway's body keys; never in plain text)."""
    record_scores: dict[str, str] = Field(default_factory=dict)
    """Scorer name -> a declared `float` metric: those scores also go to the score store
    (source `evaluator`, about the target call's trace). A list means same-named metrics."""

    @model_validator(mode="before")
    @classmethod
    def _dataset_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("dataset"), str):
            return {**data, "dataset": {"file": data["dataset"]}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _record_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("record_scores"), list):
            return {**data, "record_scores": {str(n): str(n) for n in data["record_scores"]}}
        return data

    @model_validator(mode="after")
    def _distinct_targets(self) -> EvalSpec:
        labels = [t.label for t in self.targets]
        if len(set(labels)) != len(labels):
            raise ValueError("two targets have the same name: give one a `name`")
        return self


def parse_spec(data: Any, source: str = "<spec>") -> EvalSpec:
    try:
        return EvalSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise EvalSpecError(f"{source}: {problems}") from None


def load_spec(path: Path) -> EvalSpec:
    """Read and check an eval file; a relative dataset file is taken from the file's folder."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise EvalSpecError(f"cannot read {path}: {exc}") from None
    spec = parse_spec(data, str(path))
    file = spec.dataset.file
    if file is not None and not Path(file).is_absolute():
        dataset = spec.dataset.model_copy(update={"file": str(path.parent / file)})
        spec = spec.model_copy(update={"dataset": dataset})
    return spec
