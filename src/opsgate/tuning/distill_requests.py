"""What a caller sends to start a distillation (the admin API body and the CLI's fields)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsgate.feedback.datasets.requests import Name
from opsgate.tuning.requests import ADAPTER_NAME, LoraBody

Topic = Annotated[str, Field(min_length=1, max_length=500)]
MIN_INPUTS = 5
"""4 to train on (a tuning job's minimum) and 1 held out to compare."""
DEFAULT_FILTERS: list[Any] = ["refusal"]
DEFAULT_SCORERS: list[Any] = ["exact"]
CPU_HOUR_USD = 0.05
"""The default price of one CPU hour for the student's cost (an assumption the caller can
change: a cloud vCPU hour costs a few cents)."""


class DistillCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(min_length=1, description="a model the gateway serves")
    dataset: str | None = Field(default=None, min_length=1, description="dataset id or name")
    dataset_version: int | None = Field(default=None, ge=1, description="default: the latest")
    topics: list[Topic] | None = Field(
        default=None, min_length=1, max_length=100, description="seed topics, instead of a dataset"
    )
    per_topic: int = Field(default=10, ge=1, le=100, description="inputs written per topic")
    student: str = Field(min_length=1, description="base model folder the student starts from")
    adapter: str = Field(pattern=ADAPTER_NAME, description="the student adapter's name")
    into: Name | None = Field(
        default=None, description="name of the distilled dataset (default: <adapter>-distilled)"
    )
    filters: list[Any] = Field(
        default_factory=lambda: list(DEFAULT_FILTERS),
        max_length=16,
        description="scorers a teacher answer must pass (value >= 0.5) to be kept",
    )
    scorers: list[Any] = Field(
        default_factory=lambda: list(DEFAULT_SCORERS),
        min_length=1,
        max_length=16,
        description="quality scorers of the comparison",
    )
    params: dict[str, Any] = Field(
        default_factory=lambda: {"temperature": 0}, description="teacher request parameters"
    )
    held_out: float = Field(default=0.2, ge=0.05, le=0.5, description="inputs kept to compare")
    max_inputs: int = Field(default=2000, ge=1, le=20_000, description="dataset rows read")
    concurrency: int = Field(default=4, ge=1, le=64, description="teacher calls in flight")
    max_new_tokens: int = Field(default=64, ge=1, le=4096, description="student answer length")
    cpu_hour_usd: float = Field(
        default=CPU_HOUR_USD, ge=0, le=100, description="assumed price of a CPU hour"
    )
    settings: LoraBody = Field(default_factory=LoraBody)
    validation: float = Field(default=0.2, ge=0.05, le=0.5, description="job's held-back share")
    team_id: str | None = Field(default=None, description="owning team (admins only)")

    @model_validator(mode="after")
    def _one_source(self) -> DistillCreate:
        if (self.dataset is None) == (self.topics is None):
            raise ValueError("give the inputs as a `dataset` or as seed `topics` (one of them)")
        if self.topics is not None and len(self.topics) * self.per_topic < MIN_INPUTS:
            raise ValueError(f"topics x per_topic must ask for at least {MIN_INPUTS} inputs")
        return self

    @property
    def dataset_name(self) -> str:
        return self.into or f"{self.adapter}-distilled"
