"""The `cache:` section of the config file.

Defaults are the embedded ones: an in-process LRU, only deterministic requests (temperature 0
or an explicit opt-in) cached, one namespace per team (per key for keys without a team), and no
semantic cache until an embedder is chosen. Every model rejects unknown keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CacheMode = Literal["off", "deterministic", "always"]
Namespacing = Literal["team", "key", "end_user", "shared"]
EmbedderType = Literal["hashing", "local", "onnx", "gateway"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CachePolicy(_Strict):
    """What to cache for one scope (the default, a team, a key).

    `deterministic` caches only requests with `temperature: 0` or an explicit opt-in (a `ttl`
    directive or `"cache": true`); `always` caches every request; `off` neither reads nor writes.
    """

    mode: CacheMode = "deterministic"
    ttl: float = Field(default=3600.0, gt=0, description="seconds an answer stays fresh")
    max_ttl: float = Field(default=7 * 86_400.0, gt=0, description="cap on a per-request ttl")
    semantic: bool = Field(default=True, description="also look up by meaning, when configured")
    threshold: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="semantic similarity override for this scope"
    )


class ExactCacheConfig(_Strict):
    backend: Literal["memory", "redis"] = "memory"
    max_entries: int = Field(default=10_000, gt=0, description="memory backend: LRU size")
    max_bytes: int = Field(default=256 * 2**20, gt=0, description="memory backend: total size")
    max_entry_bytes: int = Field(
        default=2 * 2**20, gt=0, description="larger answers are not cached"
    )
    redis_url: str | None = Field(default=None, description="default: settings.redis_url")
    prefix: str = Field(default="opsgate:cache:", min_length=1)
    timeout: float = Field(default=0.5, gt=0, description="seconds per backend call")


class EmbedderConfig(_Strict):
    """How a request's final user turn becomes a vector."""

    type: EmbedderType = "hashing"
    dim: int = Field(default=1024, ge=16, le=65_536, description="hashing: vector size")
    model_path: str | None = Field(
        default=None, description="local/onnx: model folder (default: the packaged MiniLM)"
    )
    model: str | None = Field(default=None, description="gateway: an embeddings model name")
    quantized: bool = Field(default=True, description="onnx: prefer the int8 model file")


class SemanticCacheConfig(_Strict):
    enabled: bool = False
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    threshold: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="cosine similarity for a hit; default: the embedder's measured threshold",
    )
    index: Literal["auto", "exact", "usearch"] = Field(
        default="auto", description="auto: exact search while a partition is small, then HNSW"
    )
    dtype: Literal["f32", "f16", "i8"] = Field(default="f16", description="HNSW vector storage")
    path: str | None = Field(default=None, description="folder the index is saved to and loaded")
    max_entries: int = Field(default=1_000_000, gt=0)
    shared: bool = Field(
        default=False,
        description="share entries across replicas through Redis (needs exact.backend: redis); "
        "each replica rebuilds its index from the shared log, so `path` is not used",
    )


class CacheConfig(_Strict):
    enabled: bool = True
    namespace: Namespacing = Field(
        default="team", description="who may share an answer: team (else key), key, end_user"
    )
    default: CachePolicy = Field(default_factory=CachePolicy)
    teams: dict[str, CachePolicy] = Field(default_factory=dict)
    keys: dict[str, CachePolicy] = Field(
        default_factory=dict, description="by key id; wins over the team's policy"
    )
    exact: ExactCacheConfig = Field(default_factory=ExactCacheConfig)
    semantic: SemanticCacheConfig = Field(default_factory=SemanticCacheConfig)

    @model_validator(mode="after")
    def _check(self) -> CacheConfig:
        for policy in (self.default, *self.teams.values(), *self.keys.values()):
            if policy.ttl > policy.max_ttl:
                raise ValueError("a policy's ttl must not exceed its max_ttl")
        return self
