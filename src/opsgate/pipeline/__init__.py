"""The request path: stages around an endpoint, sharing one RequestContext."""

from opsgate.access.principal import Principal
from opsgate.pipeline.context import (
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
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
