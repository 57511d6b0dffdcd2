"""The `alerts.security:` section: breach alerts (docs/alerts.md, "Security alerts").

Every alert here is de-duplicated: one alert per cause (a source address, a key, a broken
entry) per `cooldown` seconds, however many requests keep causing it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthFailureConfig(_Strict):
    """Credential stuffing: many 401s from one source address."""

    threshold: int = Field(default=20, ge=1, description="401 answers from one source address")
    window: float = Field(default=60.0, gt=0, description="... within this many seconds")


class RateConfig(_Strict):
    """A key (or user) reading stored bodies or exporting at an unusual rate, against its own
    baseline: an exponentially weighted average of its past windows' counts."""

    window: float = Field(default=300.0, gt=0, description="seconds of the short window")
    factor: float = Field(
        default=5.0, gt=1, description="alert when a window's count exceeds factor x baseline"
    )
    min_count: int = Field(
        default=50, ge=1, description="... and at least this many (a quiet key's first reads)"
    )
    floor: float = Field(
        default=2.0, ge=0, description="the baseline never drops below this many per window"
    )
    alpha: float = Field(
        default=0.2, gt=0, le=1, description="weight of the newest window in the baseline"
    )


class SecurityConfig(_Strict):
    enabled: bool = True
    audit_verify_interval: float = Field(
        default=3600.0,
        ge=0,
        description="seconds between scheduled audit-chain verifications (0: never); a "
        "broken chain raises a critical alert",
    )
    cooldown: float = Field(
        default=900.0, ge=0, description="seconds before the same cause alerts again"
    )
    auth_failures: AuthFailureConfig = Field(default_factory=AuthFailureConfig)
    body_reads: RateConfig = Field(default_factory=RateConfig)
    exports: RateConfig = Field(default_factory=lambda: RateConfig(min_count=10))
    max_sources: int = Field(
        default=10_000, ge=1, description="source addresses and keys tracked at once (LRU)"
    )
