"""An HTTP client for the gateway's OpenAI-compatible API, as eval runs and judges use it.

Calls go through the gateway with a key (never straight to a provider), so every one is
routed, traced, costed and budgeted like application traffic. Concurrency is bounded by a
semaphore; 429, 5xx, timeouts and dropped connections are retried with backoff (`Retry-After`
honoured up to `max_backoff`); other errors are returned, not raised, as `CallError`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

RETRIED = frozenset({408, 409, 429, 500, 502, 503, 504})
COST_HEADER = "x-opsgate-cost-usd"
TRACE_HEADER = "x-opsgate-trace-id"


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer: its text, tokens, cost (when the gateway says it) and trace id."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    trace_id: str | None = None
    latency_s: float = 0.0
    finish_reason: str | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class CallError:
    """A call that failed for good: `status` is the HTTP status (0 = no answer)."""

    status: int
    message: str
    code: str | None = None
    trace_id: str | None = None

    @property
    def budget_exceeded(self) -> bool:
        """The gateway refused for budget (not rate): 429 with a budget error code."""
        return self.status == 429 and "budget" in (self.code or self.message).lower()


@dataclass(slots=True)
class ClientOptions:
    timeout_s: float = 60.0
    concurrency: int = 8
    retries: int = 2
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)


class ChatClient(Protocol):
    """What judges call models through: the gateway over HTTP (`GatewayClient`, eval runs)
    or its chat pipeline in process (online scoring, `pipeline/inprocess.py`)."""

    async def chat(
        self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> Completion | CallError: ...


class GatewayClient:
    """`await client.chat(model, messages)` → `Completion | CallError`."""

    def __init__(self, base_url: str, api_key: str, options: ClientOptions | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.options = options or ClientOptions()
        self._limit = asyncio.Semaphore(self.options.concurrency)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.options.timeout_s),
                headers={"authorization": f"Bearer {self.api_key}", **self.options.headers},
            )
        return self._session

    async def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        **params: Any,
    ) -> Completion | CallError:
        return await self.complete({**params, "model": model, "messages": list(messages)})

    async def complete(self, body: Mapping[str, Any]) -> Completion | CallError:
        """POST a whole chat request body (an eval target's, a prompt reference's)."""
        async with self._limit:
            return await self._with_retries(dict(body))

    async def _with_retries(self, body: dict[str, Any]) -> Completion | CallError:
        attempt = 0
        while True:
            result, retry_after = await self._once(body)
            retriable = isinstance(result, CallError) and (
                result.status in RETRIED or result.status == 0
            )
            if not retriable or attempt >= self.options.retries:
                return result
            if isinstance(result, CallError) and result.budget_exceeded:
                return result
            attempt += 1
            wait = retry_after if retry_after is not None else self.options.backoff_s * attempt
            await asyncio.sleep(min(wait, self.options.max_backoff_s))

    async def _once(self, body: dict[str, Any]) -> tuple[Completion | CallError, float | None]:
        started = time.monotonic()
        try:
            async with self._http().post(f"{self.base_url}/chat/completions", json=body) as resp:
                raw = await resp.read()
                trace_id = resp.headers.get(TRACE_HEADER)
                if resp.status != 200:
                    return _error(resp.status, raw, trace_id), _retry_after(resp.headers)
                cost = resp.headers.get(COST_HEADER)
                elapsed = time.monotonic() - started
                return _completion(raw, trace_id, cost, elapsed), None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return CallError(0, f"no answer from the gateway: {exc or type(exc).__name__}"), None

    async def post_json(self, path: str, body: Mapping[str, Any]) -> CallError | None:
        """POST a JSON body to another gateway route (`/feedback`); None when accepted."""
        try:
            async with self._http().post(f"{self.base_url}{path}", json=dict(body)) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    return _error(resp.status, raw, resp.headers.get(TRACE_HEADER))
                return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return CallError(0, f"no answer from the gateway: {exc or type(exc).__name__}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers.get("retry-after", ""))
    except ValueError:
        return None


def _error(status: int, raw: bytes, trace_id: str | None) -> CallError:
    try:
        error = json.loads(raw)["error"]
        return CallError(status, str(error.get("message")), error.get("code"), trace_id)
    except (ValueError, KeyError, TypeError, AttributeError):
        return CallError(status, raw[:200].decode("utf-8", "replace"), None, trace_id)


def _completion(
    raw: bytes, trace_id: str | None, cost: str | None, elapsed: float
) -> Completion | CallError:
    try:
        body = json.loads(raw)
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
        usage = body.get("usage") or {}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return CallError(502, f"not a chat completion: {raw[:200]!r}", None, trace_id)
    try:
        cost_micros = round(float(cost) * 1_000_000) if cost else 0
    except ValueError:
        cost_micros = 0
    return Completion(
        str(text),
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        cost_micros,
        trace_id,
        elapsed,
        choice.get("finish_reason"),
    )
