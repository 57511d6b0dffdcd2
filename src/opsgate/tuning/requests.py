"""What a caller sends to start a tuning job (the admin API body and the CLI's fields)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsgate.tuning.evaluate import EvaluationBody

ADAPTER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class LoraBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(default=8, ge=1, le=256)
    alpha: int = Field(default=16, ge=1, le=1024)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "v_proj"], min_length=1, max_length=32
    )
    epochs: int = Field(default=3, ge=1, le=1000)
    learning_rate: float = Field(default=5e-3, gt=0, le=1)
    batch_size: int = Field(default=4, ge=1, le=1024)
    max_length: int = Field(default=256, ge=8, le=32768)
    seed: int = Field(default=0, ge=0)
    checkpoint_every: int = Field(default=10, ge=1)
    max_grad_norm: float = Field(default=1.0, ge=0)


class HostedBody(BaseModel):
    """A provider-hosted job (`method: openai`): which deployment runs it and OpenAI's
    supervised hyperparameters (unset: the provider's `auto`)."""

    model_config = ConfigDict(extra="forbid")

    deployment: str = Field(
        min_length=1, description="a configured model whose `openai` deployment runs the job"
    )
    n_epochs: int | None = Field(default=None, ge=1, le=50)
    batch_size: int | None = Field(default=None, ge=1, le=256)
    learning_rate_multiplier: float | None = Field(default=None, gt=0, le=10)
    suffix: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="in the tuned model's name"
    )
    seed: int | None = Field(default=None, ge=0)


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, description="dataset id or name")
    dataset_version: int | None = Field(default=None, ge=1, description="default: the latest")
    base: str = Field(
        min_length=1,
        description="folder of a Hugging Face causal LM (lora), the provider's model (openai)",
    )
    adapter: str = Field(pattern=ADAPTER_NAME, description="the name the adapter registers as")
    method: Literal["lora", "openai"] = "lora"
    settings: LoraBody = Field(default_factory=LoraBody)
    hosted: HostedBody | None = Field(default=None, description="method openai: its settings")
    validation: float = Field(default=0.2, ge=0.05, le=0.5, description="held-back share")
    evaluation: EvaluationBody = Field(
        default_factory=EvaluationBody, description="base vs adapter after training"
    )
    team_id: str | None = Field(default=None, description="owning team (admins only)")

    @model_validator(mode="after")
    def _method_fields(self) -> JobCreate:
        if self.method == "openai" and self.hosted is None:
            raise ValueError("method 'openai' needs `hosted` (at least its `deployment`)")
        if self.method == "openai" and "settings" in self.model_fields_set:
            raise ValueError("`settings` are LoRA's; a hosted job takes `hosted`")
        if self.method == "lora" and self.hosted is not None:
            raise ValueError("`hosted` is for method 'openai'")
        return self
