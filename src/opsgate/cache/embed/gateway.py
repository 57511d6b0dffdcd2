"""The `gateway` embedder: any embeddings model configured in opsgate (OpenAI, vLLM, Ollama ...).

It calls the gateway's own router, so the embedding model gets routing, retries and fallbacks.
The composition root (`opsgate.gateway.router_embed`) passes `embed(model, texts) -> vectors`;
the router is per config, so that function reads the current runtime's router at call time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from opsgate.cache.embed.base import Vectors, normalise_rows

EmbedCall = Callable[[str, Sequence[str]], Awaitable[list[list[float]]]]


class GatewayEmbedder:
    def __init__(
        self, call: EmbedCall, model: str, *, dim: int = 0, threshold: float = 0.9
    ) -> None:
        self.call = call
        self.model = model
        self.dim = dim
        """0 until the first answer says it."""
        self.name = f"gateway:{model}"
        self.default_threshold = threshold
        """Unmeasured for an arbitrary model: conservative; set cache.semantic.threshold."""

    async def embed(self, texts: Sequence[str]) -> Vectors:
        rows = np.asarray(await self.call(self.model, list(texts)), dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] != len(texts):
            raise ValueError(
                f"embeddings model {self.model} answered {rows.shape} for {len(texts)}"
            )
        self.dim = int(rows.shape[1])
        return normalise_rows(rows)

    async def aclose(self) -> None:
        return None
