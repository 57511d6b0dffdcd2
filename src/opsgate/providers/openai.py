"""The OpenAI chat dialect: OpenAI itself and every compatible server (vLLM, Ollama, llama.cpp
server, TGI, Groq, ...), plus Azure OpenAI's URL and header variant.

Our internal format is OpenAI's, so translation is only: pick the URL and auth, ask for stream
usage, and turn error statuses into the project's error types.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import ClassVar

import orjson

from opsgate.chat import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest
from opsgate.config.schema import DeploymentConfig
from opsgate.providers.base import CallContext, Capabilities, Provider
from opsgate.providers.errors import (
    StreamBrokenError,
    UpstreamProtocolError,
    UpstreamStatusError,
)
from opsgate.providers.sse import read_events
from opsgate.providers.transport import HTTPResult
from opsgate.types import JSONObject

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def retry_after_seconds(headers: dict[str, str]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds only; dates are rare here)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def error_message(body: bytes, status: int) -> str:
    """The upstream's own error message when it sent one in a known shape."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:200].decode("utf-8", errors="replace").strip()
        return f"upstream returned {status}" + (f": {text}" if text else "")
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return f"upstream returned {status}: {err['message']}"
        if isinstance(err, str):
            return f"upstream returned {status}: {err}"
        if isinstance(data.get("message"), str):
            return f"upstream returned {status}: {data['message']}"
    return f"upstream returned {status}"


def raise_for_status(status: int, headers: dict[str, str], body: bytes) -> None:
    if status >= 400:
        raise UpstreamStatusError(
            status, error_message(body, status), retry_after=retry_after_seconds(headers)
        )


def chunk_from_wire(data: str) -> ChatChunk:
    """One `data:` payload of an OpenAI stream; an in-band error becomes an exception."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("upstream stream sent a chunk that is not JSON") from None
    if not isinstance(obj, dict):
        raise UpstreamProtocolError("upstream stream sent a chunk that is not an object")
    if "error" in obj and "choices" not in obj:
        err = obj["error"]
        msg = err.get("message") if isinstance(err, dict) else str(err)
        raise StreamBrokenError(f"upstream stream reported an error: {msg}")
    return ChatChunk(obj)


def response_from_wire(result: HTTPResult) -> ChatResponse:
    raise_for_status(result.status, result.headers, result.body)
    body = result.json()
    if not isinstance(body.get("choices"), list):
        raise UpstreamProtocolError("upstream answer has no `choices` list")
    return ChatResponse(body)


class OpenAIProvider(Provider):
    dialect: ClassVar[str] = "openai"
    capabilities: ClassVar[Capabilities] = Capabilities(embeddings=True, adapters=True)

    def _url(self, path: str) -> str:
        return f"{self.deployment.base_url or DEFAULT_BASE_URL}/{path}"

    def _headers(self, ctx: CallContext) -> dict[str, str]:
        headers = {**self.deployment.headers, **ctx.extra_headers}
        if self.deployment.api_key is not None:
            headers["authorization"] = f"Bearer {self.deployment.api_key.get_secret_value()}"
        return headers

    def _chat_body(self, req: ChatRequest, ctx: CallContext) -> JSONObject:
        # An OpenAI-compatible server with LoRA (vLLM) serves an adapter under its own name.
        body = req.to_openai(ctx.adapter or self.deployment.model)
        if req.stream and self.deployment.options.get("stream_usage", True):
            opts = body.get("stream_options")
            body["stream_options"] = {
                **(opts if isinstance(opts, dict) else {}),
                "include_usage": True,
            }
        return body

    async def complete(self, req: ChatRequest, ctx: CallContext) -> ChatResponse:
        if self.adapters is not None and ctx.adapter:
            return await self.adapters.call(
                ctx.adapter,
                self.deployment,
                self._headers(ctx),
                ctx.timeout,
                lambda: self._complete(req, ctx),
            )
        return await self._complete(req, ctx)

    async def _complete(self, req: ChatRequest, ctx: CallContext) -> ChatResponse:
        result = await self.http.post_json(
            self._url("chat/completions"),
            self._chat_body(req, ctx),
            self._headers(ctx),
            ctx.timeout,
        )
        return response_from_wire(result)

    def stream(self, req: ChatRequest, ctx: CallContext) -> AsyncIterator[ChatChunk]:
        if self.adapters is not None and ctx.adapter:
            return self.adapters.stream(
                ctx.adapter,
                self.deployment,
                self._headers(ctx),
                ctx.timeout,
                lambda: self._stream(req, ctx),
            )
        return self._stream(req, ctx)

    async def _stream(self, req: ChatRequest, ctx: CallContext) -> AsyncGenerator[ChatChunk, None]:
        async with self.http.stream(
            self._url("chat/completions"),
            self._chat_body(req, ctx),
            self._headers(ctx),
            ctx.timeout,
            ctx.stream_idle_timeout,
        ) as resp:
            if resp.status >= 400:
                raise_for_status(resp.status, resp.headers, await resp.read())
            finished = False
            async for event in read_events(resp.lines()):
                if event.data.strip() == "[DONE]":
                    return
                chunk = chunk_from_wire(event.data)
                finished = finished or any(
                    c.get("finish_reason") for c in chunk.body.get("choices") or ()
                )
                yield chunk
            if not finished:
                raise StreamBrokenError("upstream stream ended before the answer finished")

    async def embed(self, req: EmbeddingRequest, ctx: CallContext) -> JSONObject:
        result = await self.http.post_json(
            self._url("embeddings"),
            req.to_openai(self.deployment.model),
            self._headers(ctx),
            ctx.timeout,
        )
        raise_for_status(result.status, result.headers, result.body)
        return result.json()


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: `{base}/openai/deployments/{model}/...?api-version=...`, `api-key` header."""

    dialect: ClassVar[str] = "azure"
    capabilities: ClassVar[Capabilities] = Capabilities(embeddings=True)

    @classmethod
    def check(cls, deployment: DeploymentConfig) -> list[str]:
        return [] if deployment.base_url else ["base_url: required for Azure OpenAI"]

    def _url(self, path: str) -> str:
        version = self.deployment.api_version or "2024-10-21"
        return (
            f"{self.deployment.base_url}/openai/deployments/{self.deployment.model}/{path}"
            f"?api-version={version}"
        )

    def _headers(self, ctx: CallContext) -> dict[str, str]:
        headers = {**self.deployment.headers, **ctx.extra_headers}
        if self.deployment.api_key is not None:
            headers["api-key"] = self.deployment.api_key.get_secret_value()
        return headers
