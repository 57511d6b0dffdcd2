"""The Anthropic dialect: the Messages API (`POST /v1/messages`), answers and streams.

The wire translation lives in `anthropic_wire` as pure functions; this module only adds the
URL, the headers and the HTTP calls. Error statuses map exactly as for OpenAI, since
`error_message` already reads Anthropic's `{"type": "error", "error": {...}}` bodies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import ClassVar

from opsgate.chat import ChatChunk, ChatRequest, ChatResponse
from opsgate.config.schema import DeploymentConfig
from opsgate.providers.anthropic_stream import StreamTranslator
from opsgate.providers.anthropic_wire import from_wire, to_wire
from opsgate.providers.base import CallContext, Capabilities, Provider
from opsgate.providers.openai import raise_for_status
from opsgate.providers.sse import read_events
from opsgate.types import JSONObject

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires `max_tokens`; used when the client sends none (option
`default_max_tokens` overrides it per deployment)."""


class AnthropicProvider(Provider):
    dialect: ClassVar[str] = "anthropic"
    capabilities: ClassVar[Capabilities] = Capabilities(embeddings=False)

    @classmethod
    def check(cls, deployment: DeploymentConfig) -> list[str]:
        value = deployment.options.get("default_max_tokens", DEFAULT_MAX_TOKENS)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return ["options.default_max_tokens: expected a positive integer"]
        return []

    @property
    def url(self) -> str:
        base = self.deployment.base_url or DEFAULT_BASE_URL
        return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    def _headers(self, ctx: CallContext) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION, **self.deployment.headers, **ctx.extra_headers}
        if self.deployment.api_key is not None:
            headers["x-api-key"] = self.deployment.api_key.get_secret_value()
        return headers

    def _body(self, req: ChatRequest) -> JSONObject:
        default = self.deployment.options.get("default_max_tokens", DEFAULT_MAX_TOKENS)
        return to_wire(req, self.deployment.model, default)

    async def complete(self, req: ChatRequest, ctx: CallContext) -> ChatResponse:
        body = self._body(req)
        result = await self.http.post_json(self.url, body, self._headers(ctx), ctx.timeout)
        raise_for_status(result.status, result.headers, result.body)
        return from_wire(result.json(), created=int(time.time()))

    async def stream(self, req: ChatRequest, ctx: CallContext) -> AsyncIterator[ChatChunk]:
        body = self._body(req)
        translator = StreamTranslator(model=self.deployment.model, created=int(time.time()))
        async with self.http.stream(
            self.url, body, self._headers(ctx), ctx.timeout, ctx.stream_idle_timeout
        ) as resp:
            if resp.status >= 400:
                raise_for_status(resp.status, resp.headers, await resp.read())
            async for event in read_events(resp.lines()):
                for chunk in translator.feed(event):
                    yield chunk
                if translator.done:
                    return
            translator.finish()
