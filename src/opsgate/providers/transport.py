"""The one HTTP client every provider shares (aiohttp: measured faster than httpx under load,
see docs/benchmarks.md), wrapped so providers see only the project's own error types."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import orjson

from opsgate.providers.errors import (
    StreamBrokenError,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from opsgate.types import JSONObject


@dataclass(slots=True)
class HTTPResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> JSONObject:
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                f"upstream answered {self.status} with a body that is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise UpstreamProtocolError("upstream answered with JSON that is not an object")
        return data


class StreamResponse:
    """An open streamed response: status, headers, and its body line by line."""

    def __init__(self, resp: aiohttp.ClientResponse, idle_timeout: float) -> None:
        self._resp = resp
        self._idle = idle_timeout
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.headers.items()}

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout(self._idle):
                return await self._resp.read()
        except TimeoutError:
            raise UpstreamTimeoutError("upstream stopped sending the error body") from None
        except aiohttp.ClientError as exc:
            raise StreamBrokenError(f"upstream error body broke off: {exc}") from None

    async def lines(self) -> AsyncIterator[bytes]:
        """Body lines without their line ending; a stall longer than the idle timeout raises.

        The idle bound is aiohttp's `sock_read` timeout, set when the stream was opened: it
        only arms when a read has to wait, where a per-line `asyncio.timeout` cost a timer
        handle for every line (profiled on the streaming path)."""
        content = self._resp.content
        while True:
            try:
                line = await content.readline()
            except TimeoutError:
                raise UpstreamTimeoutError(
                    f"upstream stream stalled for more than {self._idle:g}s"
                ) from None
            except aiohttp.ClientPayloadError as exc:
                raise StreamBrokenError(f"upstream stream broke off: {exc}") from None
            except aiohttp.ClientError as exc:
                raise StreamBrokenError(f"upstream stream failed: {exc}") from None
            if not line:
                return
            yield line.rstrip(b"\r\n")


def upstream_error(
    exc: TimeoutError | aiohttp.ClientError, timeout: float
) -> UpstreamTimeoutError | StreamBrokenError | UpstreamConnectionError | UpstreamProtocolError:
    """The project's error for what aiohttp raised while asking an upstream (before a stream's
    body: its lines have their own, `StreamResponse.lines`)."""
    if isinstance(exc, TimeoutError):
        return UpstreamTimeoutError(f"upstream did not answer within {timeout:g}s")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return StreamBrokenError(f"upstream answer broke off: {exc}")
    if isinstance(exc, aiohttp.ClientConnectionError):
        return UpstreamConnectionError(f"cannot reach upstream: {exc}")
    return UpstreamProtocolError(f"upstream request failed: {exc}")


class HTTPClient:
    """A pooled HTTP/1.1 client; one per gateway process, created inside the event loop."""

    def __init__(self, *, limit: int = 1000) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                # The gateway bounds every call itself; aiohttp's default 5-minute total would
                # cut long streams, and a second timer per request costs CPU.
                timeout=aiohttp.ClientTimeout(total=None),
                json_serialize=lambda o: orjson.dumps(o).decode(),
                auto_decompress=True,
                trust_env=False,
            )
        return self._session

    async def post_json(
        self, url: str, body: JSONObject, headers: dict[str, str], timeout: float
    ) -> HTTPResult:
        data = orjson.dumps(body)
        try:
            async with asyncio.timeout(timeout):
                async with self.session.post(
                    url, data=data, headers={"content-type": "application/json", **headers}
                ) as resp:
                    raw = await resp.read()
                    return HTTPResult(
                        resp.status, {k.lower(): v for k, v in resp.headers.items()}, raw
                    )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise upstream_error(exc, timeout) from None

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        timeout: float,
        *,
        files: dict[str, tuple[str, bytes]] | None = None,
        fields: dict[str, str] | None = None,
        body: JSONObject | None = None,
    ) -> HTTPResult:
        """Any other call (a GET, a JSON POST, a multipart upload of `files` with `fields`),
        for APIs beside chat such as fine-tuning."""
        data: aiohttp.FormData | bytes | None = None
        if files is not None:
            data = aiohttp.FormData()
            for name, value in (fields or {}).items():
                data.add_field(name, value)
            for name, (filename, content) in files.items():
                data.add_field(
                    name, content, filename=filename, content_type="application/octet-stream"
                )
        elif body is not None:
            data = orjson.dumps(body)
            headers = {"content-type": "application/json", **headers}
        try:
            async with asyncio.timeout(timeout):
                async with self.session.request(method, url, data=data, headers=headers) as resp:
                    raw = await resp.read()
                    return HTTPResult(
                        resp.status, {k.lower(): v for k, v in resp.headers.items()}, raw
                    )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise upstream_error(exc, timeout) from None

    @asynccontextmanager
    async def stream(
        self,
        url: str,
        body: JSONObject,
        headers: dict[str, str],
        timeout: float,
        idle_timeout: float,
    ) -> AsyncIterator[StreamResponse]:
        """Open a streamed POST; `timeout` bounds the wait for the response head."""
        data = orjson.dumps(body)
        try:
            async with asyncio.timeout(timeout):
                resp = await self.session.post(
                    url,
                    data=data,
                    headers={"content-type": "application/json", **headers},
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=idle_timeout),
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise upstream_error(exc, timeout) from None
        try:
            yield StreamResponse(resp, idle_timeout)
        finally:
            resp.close()

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
