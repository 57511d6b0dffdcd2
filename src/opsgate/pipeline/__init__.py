"""The request path: stages around an endpoint, sharing one RequestContext."""

from opsgate.pipeline.context import (
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
    Principal,
    RequestContext,
)
from opsgate.pipeline.pipeline import Pipeline, Stage

__all__ = [
    "ChatCall",
    "ChatResult",
    "EmbeddingCall",
    "EmbeddingResult",
    "Pipeline",
    "Principal",
    "RequestContext",
    "Stage",
]
