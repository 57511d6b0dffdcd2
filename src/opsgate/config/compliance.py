"""The `encryption:` and `retention:` sections of the config file.

Retention is a policy per scope: `default`, then `teams.<team_id>`, then `keys.<key_id>`; the most
specific scope that sets a field wins, field by field, so a key may shorten only `bodies_days`.
A field set to null keeps data forever; the built-in default keeps everything (no surprises on
upgrade) until an operator writes a policy.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncryptionConfig(_Strict):
    """Where body-encryption keys come from when `OPSGATE_ENCRYPTION_KEYS` is not set."""

    key_file: str | None = Field(
        default=None,
        description="key file (`kid:base64` lines, current first); default beside a SQLite file",
    )


class RetentionPolicy(_Strict):
    traces_days: float | None = Field(
        default=None, gt=0, description="delete traces (spans with them) older than this"
    )
    bodies_days: float | None = Field(
        default=None, gt=0, description="clear stored prompts and completions older than this"
    )


class RetentionConfig(_Strict):
    enabled: bool = Field(default=True, description="run the retention job in the gateway")
    interval: float = Field(default=3600.0, gt=0, description="seconds between passes")
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="rows per statement")
    pause: float = Field(default=0.05, ge=0, description="seconds to yield between statements")
    default: RetentionPolicy = Field(default_factory=RetentionPolicy)
    teams: dict[str, RetentionPolicy] = Field(default_factory=dict)
    keys: dict[str, RetentionPolicy] = Field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether any scope limits anything (else the job has nothing to do)."""
        scopes = [self.default, *self.teams.values(), *self.keys.values()]
        return any(s.traces_days is not None or s.bodies_days is not None for s in scopes)
