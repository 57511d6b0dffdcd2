"""Embedders for the semantic cache, behind one interface (`Embedder`): `hashing` (lexical, no
model), `local` (sentence-transformers), `onnx` (ONNX Runtime, fp32 or int8), `gateway` (an
embeddings model served through opsgate)."""

from __future__ import annotations

from opsgate.cache.embed.base import Embedder, Vectors, normalise_rows
from opsgate.cache.embed.gateway import EmbedCall, GatewayEmbedder
from opsgate.cache.embed.hashing import HashingEmbedder
from opsgate.cache.embed.local import EmbedderUnavailableError
from opsgate.config.cache import EmbedderConfig

__all__ = [
    "EmbedCall",
    "Embedder",
    "EmbedderUnavailableError",
    "GatewayEmbedder",
    "HashingEmbedder",
    "Vectors",
    "build_embedder",
    "normalise_rows",
]


def build_embedder(config: EmbedderConfig, gateway_call: EmbedCall | None = None) -> Embedder:
    """The configured embedder; `local`/`onnx` raise `EmbedderUnavailableError` when their
    optional packages or model files are missing."""
    if config.type == "hashing":
        return HashingEmbedder(config.dim)
    if config.type == "local":
        from opsgate.cache.embed.local import LocalEmbedder

        return LocalEmbedder(config.model_path)
    if config.type == "onnx":
        from opsgate.cache.embed.onnx import OnnxEmbedder

        return OnnxEmbedder(config.model_path, quantized=config.quantized)
    if gateway_call is None or not config.model:
        raise EmbedderUnavailableError(
            "the gateway embedder needs cache.semantic.embedder.model (an embeddings model)"
        )
    return GatewayEmbedder(gateway_call, config.model)
