"""The config file's schema (phase one: the raw file, validated, secrets not yet resolved).

Every model rejects unknown keys, so a typo is an error with its path rather than a silent no-op.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from opsgate.config.best_of import BestOfNConfig
from opsgate.config.cache import CacheConfig
from opsgate.config.compliance import EncryptionConfig, RetentionConfig
from opsgate.config.drift import DriftConfig
from opsgate.config.evals import EvalsConfig
from opsgate.config.experiments import (
    ExperimentConfig,
    ExperimentError,
    check_experiment,
    check_experiments,
)
from opsgate.config.feedback import FeedbackConfig
from opsgate.config.guard import GuardConfig
from opsgate.config.rag import RagConfig
from opsgate.config.security import SecurityConfig
from opsgate.config.tuning import TuningConfig

Strategy = Literal["weighted", "least-latency", "least-busy", "lowest-cost"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(Strict):
    """USD per one million tokens."""

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)


class DeploymentConfig(Strict):
    """One concrete place a model runs."""

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1, description="the upstream's own model id")
    id: str | None = Field(default=None, description="stable name; derived when omitted")
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_version: str | None = Field(default=None, description="Azure OpenAI api-version")
    headers: dict[str, str] = Field(default_factory=dict)
    weight: float = Field(default=1.0, gt=0)
    price: Price | None = None
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    timeout: float = Field(default=60.0, gt=0, description="seconds to a response or first chunk")
    stream_idle_timeout: float = Field(default=60.0, gt=0, description="seconds between chunks")
    max_tokens_cap: int | None = Field(default=None, gt=0)
    tags: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(
        default_factory=dict, description="provider-specific settings, checked by the provider"
    )
    adapter: str | None = Field(
        default=None,
        min_length=1,
        description="a LoRA adapter on this base, sent as the upstream model (vLLM serves a "
        "loaded adapter under its name): docs/tuning.md",
    )
    team_adapters: dict[str, str] = Field(
        default_factory=dict,
        description="per team id: the adapter that team's requests get (else `adapter`, else "
        "the base `model`)",
    )
    adapter_loading: Literal["off", "vllm"] = Field(
        default="off",
        description="vllm: load a registered adapter on first use through vLLM's "
        "/v1/load_lora_adapter (docs/tuning.md)",
    )
    base: str | None = Field(
        default=None,
        min_length=1,
        description="the base model folder the upstream serves: an adapter trained on another "
        "base is refused (default: `model`)",
    )

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


class ModelGroupConfig(Strict):
    """A public model name and the deployments that can serve it."""

    name: str = Field(min_length=1)
    deployments: list[DeploymentConfig] = Field(min_length=1)
    description: str | None = None
    kind: Literal["chat", "embedding"] = "chat"
    best_of_n: BestOfNConfig | None = Field(
        default=None, description="re-rank n candidates with a scorer (docs/experiments.md)"
    )


class CircuitConfig(Strict):
    failure_threshold: int = Field(default=5, ge=1, description="consecutive failures to open")
    cooldown: float = Field(default=30.0, gt=0, description="seconds before a half-open probe")


class RouterConfig(Strict):
    strategy: Strategy = "weighted"
    retries: int = Field(default=2, ge=0, le=10, description="extra attempts within a model group")
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    backoff_base: float = Field(default=0.2, ge=0, description="seconds; doubled per retry")
    backoff_max: float = Field(default=5.0, ge=0)
    max_retry_after: float = Field(
        default=10.0, ge=0, description="longest Retry-After honoured by waiting; longer moves on"
    )
    request_timeout: float = Field(default=600.0, gt=0, description="whole request, all attempts")
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)


class TracesConfig(Strict):
    """What the gateway keeps about each request, and how it writes it."""

    enabled: bool = Field(default=True, description="store a trace per request")
    store_bodies: Literal["off", "masked", "full"] = Field(
        default="off",
        description="keep prompts and completions with the trace; masked: PII and secrets "
        "replaced by typed placeholders first",
    )
    queue_size: int = Field(default=10_000, ge=1)
    batch_size: int = Field(default=200, ge=1)
    flush_interval: float = Field(default=0.5, gt=0, description="seconds")
    journal_path: str | None = Field(
        default=None, description="spill file while the database is down (default: beside it)"
    )
    otel_capture_content: bool = Field(
        default=False, description="put prompts and completions on OpenTelemetry spans"
    )


class LimitsConfig(Strict):
    """Where rate-limit and budget counters live."""

    backend: Literal["auto", "memory", "redis"] = Field(
        default="auto", description="auto: Redis when settings.redis_url is set, else memory"
    )
    redis_prefix: str = Field(default="opsgate:", min_length=1)
    fail_open: bool = Field(
        default=True, description="admit requests unlimited when Redis is unreachable"
    )
    lease_ttl: float = Field(default=30.0, gt=0, description="seconds a parallel slot is held")
    default_max_tokens: int = Field(
        default=4096, gt=0, description="worst case when neither request nor deployment caps it"
    )


class WebhookConfig(Strict):
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 signing secret")
    format: Literal["json", "slack"] = "json"
    timeout: float = Field(default=10.0, gt=0)


class AlertsConfig(Strict):
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    queue_size: int = Field(default=1000, ge=1)
    retry_attempts: int = Field(default=6, ge=1)
    retry_base: float = Field(default=0.5, ge=0)
    retry_max: float = Field(default=60.0, ge=0)
    security: SecurityConfig = Field(
        default_factory=SecurityConfig, description="breach alerts (docs/alerts.md)"
    )


class Settings(Strict):
    """Process settings, normally from the environment (OPSGATE_*)."""

    database_url: str = "sqlite:///./opsgate.db"
    redis_url: str | None = None
    master_key: SecretStr | None = None


class Config(Strict):
    models: list[ModelGroupConfig] = Field(default_factory=list)
    router: RouterConfig = Field(default_factory=RouterConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    traces: TracesConfig = Field(default_factory=TracesConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    evals: EvalsConfig = Field(default_factory=EvalsConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    rag: RagConfig = Field(default_factory=RagConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    experiments: list[ExperimentConfig] = Field(default_factory=list, max_length=256)
    settings: Settings = Field(default_factory=Settings)

    @model_validator(mode="after")
    def _check_names(self) -> Config:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        known = set(names)
        for source, targets in self.router.fallbacks.items():
            for name in [source, *targets]:
                if name not in known:
                    raise ValueError(f"router.fallbacks names unknown model {name!r}")
        ids = [d.id for m in self.models for d in m.deployments if d.id]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"deployment ids must be unique; repeated: {', '.join(repeated)}")
        self._check_online(known)
        self._check_drift()
        for name in self.guard.models:
            if self.models and name not in known:
                raise ValueError(f"guard.models names unknown model {name!r}")
        self._check_experiments(known)
        for group in self.models:
            for variant in group.best_of_n.variants if group.best_of_n else ():
                if variant.model is not None and variant.model not in known:
                    raise ValueError(
                        f"models[{group.name}].best_of_n.variants: unknown model {variant.model!r}"
                    )
        return self

    def _check_experiments(self, models: set[str]) -> None:
        """Experiments name declared metrics and known models, and overlap only inside an
        exclusion group (config/experiments.py)."""
        try:
            for i, exp in enumerate(self.experiments):
                try:
                    check_experiment(exp, metrics=self.feedback.metrics, models=models)
                except ExperimentError as exc:
                    raise ExperimentError(f"experiments[{i}].{exc.field}", str(exc)) from None
            check_experiments(self.experiments)
        except ExperimentError as exc:
            raise ValueError(f"{exc.field}: {exc}") from None

    def _check_drift(self) -> None:
        """Quality monitors watch declared float or boolean metrics."""
        for i, monitor in enumerate(self.drift.monitors):
            found = self.feedback.metrics.get(monitor.metric) if monitor.metric else None
            if monitor.kind == "quality" and (
                found is None or found.type not in ("float", "boolean")
            ):
                raise ValueError(
                    f"drift.monitors[{i}].metric: {monitor.metric!r} must be declared in "
                    "feedback.metrics as a float or boolean"
                )

    def _check_online(self, models: set[str]) -> None:
        """Online rules name known models and write declared float or boolean metrics."""
        declared = self.feedback.metrics
        for i, rule in enumerate(self.evals.online):
            where = f"evals.online[{i}]"
            plain = not any(c in rule.model for c in "*?[") and ":" not in rule.model
            if plain and rule.model not in models:
                raise ValueError(f"{where}.model: unknown model {rule.model!r}")
            for metric in rule.metrics:
                found = declared.get(metric)
                if found is None or found.type not in ("float", "boolean"):
                    raise ValueError(
                        f"{where}.scorers: metric {metric!r} must be declared in "
                        "feedback.metrics as a float (the score, 0..1) or boolean (flagged)"
                    )
                if found.level != "inference":
                    raise ValueError(f"{where}.scorers: metric {metric!r} must be level inference")
                low, high = found.min, found.max
                if (low is not None and low > 0) or (high is not None and high < 1):
                    raise ValueError(f"{where}.scorers: float metric {metric!r} must allow 0..1")

    def group(self, name: str) -> ModelGroupConfig | None:
        return next((m for m in self.models if m.name == name), None)
