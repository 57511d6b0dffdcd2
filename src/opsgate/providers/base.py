"""The provider interface: one adapter per upstream API dialect."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

from opsgate.chat import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest
from opsgate.config.schema import DeploymentConfig
from opsgate.errors import BadRequestError
from opsgate.providers.adapter_loading import UpstreamAdapters
from opsgate.providers.transport import HTTPClient
from opsgate.types import JSONObject


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a dialect can do, as data rather than isinstance checks."""

    chat: bool = True
    embeddings: bool = False
    stream_usage: bool = True
    """Upstream reports token usage at the end of a stream when asked."""
    adapters: bool = False
    """Serves LoRA adapters on a base by name (a deployment may set `adapter`)."""


@dataclass(slots=True)
class CallContext:
    """Per-attempt settings a provider needs; nothing HTTP-framework specific."""

    trace_id: str
    timeout: float
    """Seconds to a complete answer, or for a stream to its response head (the router bounds
    the wait for the first chunk with the same figure)."""
    stream_idle_timeout: float = 60.0
    """Seconds allowed between two chunks of a stream."""
    extra_headers: dict[str, str] = field(default_factory=dict)
    adapter: str | None = None
    """The LoRA adapter this attempt asks for (the deployment's, per the caller's team)."""


class Provider(ABC):
    """Speaks one upstream API dialect for one deployment.

    Implementations raise only `opsgate.providers.errors.UpstreamError` subclasses for upstream
    failures, so the router can decide what to retry without knowing the dialect.
    """

    dialect: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, deployment: DeploymentConfig, http: HTTPClient) -> None:
        self.deployment = deployment
        self.http = http
        self.adapters: UpstreamAdapters | None = None
        """Set by the router's build for `adapter_loading: vllm`: loads adapters on first use."""

    @classmethod
    def check(cls, deployment: DeploymentConfig) -> list[str]:
        """Problems with a deployment's settings for this dialect (config phase two)."""
        return []

    @abstractmethod
    async def complete(self, req: ChatRequest, ctx: CallContext) -> ChatResponse:
        """Answer a non-streamed chat request."""

    @abstractmethod
    def stream(self, req: ChatRequest, ctx: CallContext) -> AsyncIterator[ChatChunk]:
        """Yield OpenAI-shaped chunks; the last may carry usage only."""

    async def embed(self, req: EmbeddingRequest, ctx: CallContext) -> JSONObject:
        """Answer an embeddings request as an OpenAI `list` object."""
        raise BadRequestError(
            f"provider {self.dialect!r} does not serve embeddings", code="unsupported_operation"
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the adapter holds (the shared HTTP client is not its to close)."""
