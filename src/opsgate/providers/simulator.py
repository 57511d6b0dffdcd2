"""The simulator: a clearly labelled fake model that needs no network or key.

It gives `make serve`, demos and benchmarks realistic behaviour: plausible text, token counts,
time to first token and per-token latency, and injected failures (429, 500, timeouts, broken
streams) at configured rates. The same prompt gives the same answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsgate.chat import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, Usage
from opsgate.config.schema import DeploymentConfig
from opsgate.providers.base import CallContext, Capabilities, Provider
from opsgate.providers.errors import (
    StreamBrokenError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from opsgate.types import JSONObject

PREFIX = "[simulated] "
_WORDS = [
    "the",
    "gateway",
    "routes",
    "each",
    "request",
    "to",
    "a",
    "healthy",
    "deployment",
    "and",
    "records",
    "its",
    "latency",
    "tokens",
    "and",
    "cost",
    "so",
    "teams",
    "can",
    "see",
    "what",
    "their",
    "models",
    "do",
    "in",
    "production",
    "while",
    "caches",
    "answer",
    "repeated",
    "questions",
    "budgets",
    "keep",
    "spending",
    "in",
    "check",
    "and",
    "guards",
    "stop",
    "unsafe",
    "prompts",
    "before",
    "they",
    "reach",
    "a",
    "provider",
    "every",
    "answer",
    "here",
    "comes",
    "from",
    "the",
    "opsgate",
    "simulator",
    "rather",
    "than",
    "a",
    "real",
    "model",
]


class SimulatorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ttft_ms: float = Field(default=120.0, ge=0, description="time to first token")
    token_ms: float = Field(default=8.0, ge=0, description="time per output token")
    output_tokens: int = Field(default=48, ge=1, description="answer length when not capped")
    rate_429: float = Field(default=0.0, ge=0, le=1)
    rate_500: float = Field(default=0.0, ge=0, le=1)
    rate_timeout: float = Field(default=0.0, ge=0, le=1)
    rate_broken_stream: float = Field(default=0.0, ge=0, le=1)
    embedding_dimensions: int = Field(default=256, ge=8, le=4096)
    seed: int = 0


def count_tokens(text: str) -> int:
    """A documented estimate: about four characters per token, as OpenAI's rule of thumb."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def prompt_text(messages: list[JSONObject]) -> str:
    parts: list[str] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


class SimulatorProvider(Provider):
    dialect: ClassVar[str] = "simulator"
    capabilities: ClassVar[Capabilities] = Capabilities(embeddings=True)

    def __init__(self, deployment: DeploymentConfig, http: Any) -> None:
        super().__init__(deployment, http)
        self.options = SimulatorOptions.model_validate(deployment.options)
        self._chaos = random.Random(self.options.seed or None)

    @classmethod
    def check(cls, deployment: DeploymentConfig) -> list[str]:
        try:
            SimulatorOptions.model_validate(deployment.options)
        except ValidationError as exc:
            return [
                f"options.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
        return []

    # -- failures --------------------------------------------------------------------------

    async def _maybe_fail(self, ctx: CallContext) -> None:
        o = self.options
        roll = self._chaos.random()
        if roll < o.rate_429:
            raise UpstreamStatusError(
                429, "upstream returned 429: simulated rate limit", retry_after=1.0
            )
        roll -= o.rate_429
        if roll < o.rate_500:
            raise UpstreamStatusError(500, "upstream returned 500: simulated server error")
        roll -= o.rate_500
        if roll < o.rate_timeout:
            await asyncio.sleep(ctx.timeout)
            raise UpstreamTimeoutError(f"upstream did not answer within {ctx.timeout:g}s")

    # -- content ---------------------------------------------------------------------------

    def _answer(self, req: ChatRequest, index: int) -> tuple[list[str], str]:
        """The answer's tokens (as text pieces) and its finish reason."""
        text = prompt_text(req.messages)
        digest = hashlib.blake2b(f"{self.options.seed}:{index}:{text}".encode(), digest_size=8)
        rng = random.Random(int.from_bytes(digest.digest(), "big"))
        want = self.options.output_tokens
        cap = req.max_tokens
        n_tokens = min(want, cap) if cap else want
        words = [PREFIX.strip()] + [rng.choice(_WORDS) for _ in range(max(0, n_tokens - 1))]
        pieces = [words[0]] + [" " + w for w in words[1:]]
        pieces = pieces[:n_tokens]
        return pieces, "length" if cap is not None and cap < want else "stop"

    def _tool_call(self, req: ChatRequest) -> JSONObject | None:
        tools = req.params.get("tools")
        choice = req.params.get("tool_choice")
        if not isinstance(tools, list) or not tools or choice in (None, "none", "auto"):
            return None
        name = None
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
        if name is None:
            first = tools[0] if isinstance(tools[0], dict) else {}
            name = (first.get("function") or {}).get("name", "tool")
        return {
            "id": "call_sim_0",
            "type": "function",
            "function": {"name": name, "arguments": "{}"},
        }

    def _usage(self, req: ChatRequest, completion: int) -> Usage:
        return Usage(
            prompt_tokens=count_tokens(prompt_text(req.messages)) + 3 * len(req.messages),
            completion_tokens=completion,
        )

    # -- Provider --------------------------------------------------------------------------

    async def complete(self, req: ChatRequest, ctx: CallContext) -> ChatResponse:
        await self._maybe_fail(ctx)
        choices: list[JSONObject] = []
        completion = 0
        tool = self._tool_call(req)
        for i in range(req.n):
            pieces, finish = self._answer(req, i)
            completion += len(pieces)
            message: JSONObject = {"role": "assistant", "content": "".join(pieces)}
            if tool is not None:
                message = {"role": "assistant", "content": None, "tool_calls": [tool]}
                finish = "tool_calls"
            choices.append(
                {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
            )
        delay = (self.options.ttft_ms + self.options.token_ms * completion / req.n) / 1000
        if delay > ctx.timeout:
            await asyncio.sleep(ctx.timeout)
            raise UpstreamTimeoutError(f"upstream did not answer within {ctx.timeout:g}s")
        if delay:
            await asyncio.sleep(delay)
        return ChatResponse(
            {
                "id": f"chatcmpl-sim-{ctx.trace_id}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.deployment.model,
                "system_fingerprint": "opsgate-simulator",
                "choices": choices,
                "usage": self._usage(req, completion).to_openai(),
            }
        )

    async def stream(self, req: ChatRequest, ctx: CallContext) -> AsyncIterator[ChatChunk]:
        await self._maybe_fail(ctx)
        o = self.options
        if o.ttft_ms / 1000 > ctx.timeout:
            await asyncio.sleep(ctx.timeout)
            raise UpstreamTimeoutError(f"upstream did not answer within {ctx.timeout:g}s")
        breaks = self._chaos.random() < o.rate_broken_stream
        base: JSONObject = {
            "id": f"chatcmpl-sim-{ctx.trace_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.deployment.model,
            "system_fingerprint": "opsgate-simulator",
        }
        if o.ttft_ms:
            await asyncio.sleep(o.ttft_ms / 1000)
        completion = 0
        for i in range(req.n):
            yield ChatChunk(
                {
                    **base,
                    "choices": [
                        {
                            "index": i,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    ],
                }
            )
            pieces, finish = self._answer(req, i)
            for k, piece in enumerate(pieces):
                if breaks and k == len(pieces) // 2:
                    raise StreamBrokenError("simulated stream broke midway")
                if o.token_ms and k:
                    await asyncio.sleep(o.token_ms / 1000)
                completion += 1
                yield ChatChunk(
                    {
                        **base,
                        "choices": [
                            {"index": i, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                )
            yield ChatChunk(
                {**base, "choices": [{"index": i, "delta": {}, "finish_reason": finish}]}
            )
        yield ChatChunk({**base, "choices": [], "usage": self._usage(req, completion).to_openai()})

    async def embed(self, req: EmbeddingRequest, ctx: CallContext) -> JSONObject:
        await self._maybe_fail(ctx)
        dims = int(req.params.get("dimensions") or self.options.embedding_dimensions)
        data = []
        tokens = 0
        for i, item in enumerate(req.inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += count_tokens(text)
            data.append({"object": "embedding", "index": i, "embedding": _hash_vector(text, dims)})
        return {
            "object": "list",
            "data": data,
            "model": self.deployment.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _hash_vector(text: str, dims: int) -> list[float]:
    """A unit vector from hashed word features: similar wording gives similar vectors."""
    vec = [0.0] * dims
    for word in text.lower().split():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vec[h % dims] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]
