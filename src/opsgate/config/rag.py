"""The `rag:` section of the config file: knowledge bases' embedder, chunking, retrieval and
the policy for retrieved text (docs/rag.md).

```yaml
rag:
  embedder: {type: local}          # hashing (default), local, onnx, gateway
  top_k: 5
  injection: drop                  # drop | spotlight | block
  bindings:
    - {knowledge_base: handbook, model: chat-support, top_k: 4}
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsgate.config.cache import EmbedderConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FusionConfig(_Strict):
    """Reciprocal rank fusion: score = sum of weight / (k + rank) over the retrievers."""

    bm25_weight: float = Field(default=1.0, ge=0.0)
    vector_weight: float = Field(default=1.0, ge=0.0)
    rrf_k: int = Field(default=60, ge=1, description="the rank offset of reciprocal rank fusion")
    candidates: int = Field(
        default=50, ge=1, le=1000, description="hits each retriever hands to fusion"
    )


class Binding(_Strict):
    """A knowledge base searched for requests that match (any field left out matches all)."""

    knowledge_base: str
    top_k: int | None = Field(default=None, ge=1)
    model: str | None = None
    team: str | None = None
    key: str | None = Field(default=None, description="a key id")


class GroundingConfig(_Strict):
    enabled: bool = True
    metric: str = Field(
        default="grounding",
        description="the score written (source online): 1 = the answer is supported by the "
        "retrieved passages, 0 = not",
    )


class RagConfig(_Strict):
    enabled: bool = True
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    index_path: str | None = Field(
        default=None,
        description="folder for the embedded store's vector indexes (default: beside the "
        "SQLite database, `<file>.rag/`; in memory for an in-memory database)",
    )
    postgres_vectors: Literal["auto", "pgvector", "local"] = Field(
        default="auto",
        description="vector search on PostgreSQL: pgvector (required: without the extension "
        "knowledge bases answer 503 and say how to install it), local (an in-process usearch "
        "index per replica, built from the chunks table), auto (pgvector where the server has "
        "it, else local, with a warning)",
    )
    chunk_tokens: int = Field(default=256, ge=16, le=8192)
    chunk_overlap: int = Field(default=32, ge=0)
    top_k: int = Field(default=5, ge=1)
    max_top_k: int = Field(default=50, ge=1, le=1000)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    mmr: bool = Field(default=False, description="diversify hits (maximal marginal relevance)")
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0)
    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, description="largest ingest request body (413 above)"
    )
    max_context_chars: int = Field(
        default=24_000, ge=256, description="passages inserted into one request, at most"
    )
    injection: Literal["drop", "spotlight", "block"] = Field(
        default="drop",
        description="a retrieved chunk the injection detector flags (as untrusted text): drop "
        "it, spotlight it (kept, marked as suspicious data), or block the request (400)",
    )
    pii: Literal["inherit", "off", "redact"] = Field(
        default="inherit",
        description="PII in retrieved chunks: inherit (redact when the caller's guard policy "
        "redacts PII), off, redact",
    )
    bindings: tuple[Binding, ...] = Field(default=())
    grounding: GroundingConfig = Field(default_factory=GroundingConfig)

    @model_validator(mode="after")
    def _check(self) -> RagConfig:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be below chunk_tokens")
        if self.top_k > self.max_top_k:
            raise ValueError("top_k must not be above max_top_k")
        return self
