"""Loading LoRA adapters on an OpenAI-compatible server at run time: vLLM's dynamic LoRA
endpoints, for deployments with `adapter_loading: vllm` (docs/tuning.md).

vLLM started with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` answers
`POST /v1/load_lora_adapter {"lora_name", "lora_path"}` (200; a 400 saying the adapter "has
already been loaded" when another replica was first) and then serves the adapter as the `model`
`lora_name`; a model it does not have is a 404 on `/v1/chat/completions`. The gateway loads an
adapter the first time a request asks for it on an upstream (concurrent first uses wait for the
same load call), and when the upstream answers 404 for it (restarted, or the adapter was
unloaded) it loads it once more and asks again before failing.

Where the weights lie comes from the adapter registry, through the `AdapterLookup` the gateway
hands in (the registry lives in a layer above); it also refuses an adapter on another base.
Deployments without `adapter_loading` never reach this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TypeVar

from opsgate.config.schema import DeploymentConfig
from opsgate.errors import ServiceUnavailableError
from opsgate.providers.errors import UpstreamError, UpstreamStatusError
from opsgate.providers.transport import HTTPClient

T = TypeVar("T")
DEFAULT_BASE_URL = "https://api.openai.com/v1"

AdapterLookup = Callable[[str, DeploymentConfig], Awaitable[str]]
"""(adapter name, deployment) -> the adapter's folder, for the server to load. Raises an
`OpsgateError` (4xx) for an adapter that is not registered or was trained on another base."""


class AdapterLoadError(UpstreamError):
    """The upstream refused or failed to load the adapter: this deployment cannot serve it
    now, another one may."""

    default_code = "adapter_load_failed"
    kind = "adapter_load"
    retryable = False


def _already_loaded(status: int, body: bytes) -> bool:
    return status == 400 and b"already been loaded" in body


class UpstreamAdapters:
    """The adapters this process loaded on one upstream (one base URL)."""

    def __init__(self, base_url: str, http: HTTPClient, lookup: AdapterLookup | None) -> None:
        self.base_url = base_url
        self.loaded: set[str] = set()
        self.loads = 0
        """Load calls made (the loaded ones are in `GET /admin/v1/deployments`)."""
        self._http = http
        self._lookup = lookup
        self._loading: dict[str, asyncio.Task[None]] = {}

    async def ensure(
        self, name: str, deployment: DeploymentConfig, headers: dict[str, str], timeout: float
    ) -> None:
        """Load `name` unless this process already did; concurrent callers share one load."""
        if name in self.loaded:
            return
        task = self._loading.get(name)
        if task is None:
            task = asyncio.create_task(self._load(name, deployment, headers, timeout))
            self._loading[name] = task
            task.add_done_callback(lambda t: self._done(name, t))
        # One caller giving up (a client went away) must not cancel the others' load.
        await asyncio.shield(task)

    def _done(self, name: str, task: asyncio.Task[None]) -> None:
        if self._loading.get(name) is task:
            del self._loading[name]
        if not task.cancelled():
            task.exception()  # retrieved here: a failed load nobody awaits any more is not logged

    async def _load(
        self, name: str, deployment: DeploymentConfig, headers: dict[str, str], timeout: float
    ) -> None:
        if self._lookup is None:
            raise ServiceUnavailableError(
                "adapter loading needs the adapter registry, which this process does not have",
                code="adapter_registry_unavailable",
            )
        path = await self._lookup(name, deployment)
        self.loads += 1
        result = await self._http.post_json(
            f"{self.base_url}/load_lora_adapter",
            {"lora_name": name, "lora_path": path},
            headers,
            timeout,
        )
        if result.status >= 400 and not _already_loaded(result.status, result.body):
            text = result.body[:300].decode("utf-8", errors="replace").strip()
            raise AdapterLoadError(
                f"upstream {self.base_url} could not load adapter {name!r} "
                f"({result.status}): {text}"
            )
        self.loaded.add(name)

    def forget(self, name: str) -> None:
        """The upstream no longer has it (it answered 404): load it again on next use."""
        self.loaded.discard(name)

    async def call(
        self,
        name: str,
        deployment: DeploymentConfig,
        headers: dict[str, str],
        timeout: float,
        attempt: Callable[[], Awaitable[T]],
    ) -> T:
        """`attempt()` with the adapter loaded; on a 404 load it again and try once more."""
        await self.ensure(name, deployment, headers, timeout)
        try:
            return await attempt()
        except UpstreamStatusError as exc:
            if exc.upstream_status != 404:
                raise
        self.forget(name)
        await self.ensure(name, deployment, headers, timeout)
        return await attempt()

    async def stream(
        self,
        name: str,
        deployment: DeploymentConfig,
        headers: dict[str, str],
        timeout: float,
        open_stream: Callable[[], AsyncGenerator[T, None]],
    ) -> AsyncIterator[T]:
        """As `call`, for a stream: a 404 comes with the response head, before any chunk."""
        await self.ensure(name, deployment, headers, timeout)
        started = False
        chunks = open_stream()
        try:
            async for chunk in chunks:
                started = True
                yield chunk
            return
        except UpstreamStatusError as exc:
            if started or exc.upstream_status != 404:
                raise
        finally:
            await chunks.aclose()
        self.forget(name)
        await self.ensure(name, deployment, headers, timeout)
        async for chunk in open_stream():
            yield chunk


class AdapterLoading:
    """Per process: each upstream's loaded adapters, kept across config reloads (an upstream
    keeps what it loaded when the gateway's config changes)."""

    def __init__(self, http: HTTPClient, lookup: AdapterLookup | None = None) -> None:
        self._http = http
        self._lookup = lookup
        self._upstreams: dict[str, UpstreamAdapters] = {}

    def for_deployment(self, deployment: DeploymentConfig) -> UpstreamAdapters | None:
        """The loader of the deployment's upstream; None when it does not load adapters."""
        if deployment.adapter_loading != "vllm":
            return None
        url = deployment.base_url or DEFAULT_BASE_URL
        found = self._upstreams.get(url)
        if found is None:
            found = self._upstreams[url] = UpstreamAdapters(url, self._http, self._lookup)
        return found
