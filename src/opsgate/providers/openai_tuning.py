"""OpenAI's fine-tuning jobs API for one `openai` deployment (its base URL, key and headers):
upload a training file, create a job, read it and its events, cancel it.

Only the wire: statuses, retries and what the gateway records live in `tuning.hosted`. Errors
are the providers' own (`UpstreamStatusError` with the provider's message, timeouts,
unreachable hosts), so the caller can tell a refused file from a provider that is down.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from opsgate.config.schema import DeploymentConfig
from opsgate.providers.errors import UpstreamProtocolError
from opsgate.providers.openai import DEFAULT_BASE_URL, raise_for_status
from opsgate.providers.transport import HTTPClient, HTTPResult
from opsgate.types import JSONObject

PROVIDERS = ("openai",)
"""The dialects whose deployments can run hosted fine-tuning jobs."""


class OpenAIFineTuning:
    def __init__(self, deployment: DeploymentConfig, http: HTTPClient, *, timeout: float = 60.0):
        self.deployment = deployment
        self._http = http
        self._timeout = timeout

    def _url(self, path: str) -> str:
        return f"{self.deployment.base_url or DEFAULT_BASE_URL}/{path}"

    def _headers(self) -> dict[str, str]:
        headers = dict(self.deployment.headers)
        if self.deployment.api_key is not None:
            headers["authorization"] = f"Bearer {self.deployment.api_key.get_secret_value()}"
        return headers

    async def _call(self, method: str, path: str, **kwargs: Any) -> JSONObject:
        result: HTTPResult = await self._http.send(
            method, self._url(path), self._headers(), self._timeout, **kwargs
        )
        raise_for_status(result.status, result.headers, result.body)
        return result.json()

    async def upload(self, filename: str, content: bytes) -> str:
        """`POST /files` (purpose `fine-tune`, multipart): the new file's id."""
        made = await self._call(
            "POST", "files", files={"file": (filename, content)}, fields={"purpose": "fine-tune"}
        )
        return _id(made, "file")

    async def delete_file(self, file_id: str) -> None:
        """`DELETE /files/{id}`: the training data leaves the provider."""
        await self._call("DELETE", f"files/{file_id}")

    async def create(self, body: JSONObject) -> JSONObject:
        """`POST /fine_tuning/jobs`: the new job (`id`, `status`, ...)."""
        job = await self._call("POST", "fine_tuning/jobs", body=body)
        _id(job, "fine-tuning job")
        return job

    async def job(self, job_id: str) -> JSONObject:
        return await self._call("GET", f"fine_tuning/jobs/{job_id}")

    async def events(
        self, job_id: str, *, after: str | None = None, limit: int = 100
    ) -> JSONObject:
        """One page of a job's events, newest first (`data`, `has_more`); `after` an event id
        of the previous page to read older ones."""
        query = urlencode({"limit": limit} | ({"after": after} if after else {}))
        page = await self._call("GET", f"fine_tuning/jobs/{job_id}/events?{query}")
        if not isinstance(page.get("data"), list):
            raise UpstreamProtocolError("the provider's event list has no `data` list")
        return page

    async def cancel(self, job_id: str) -> JSONObject:
        return await self._call("POST", f"fine_tuning/jobs/{job_id}/cancel")


def _id(obj: JSONObject, what: str) -> str:
    value = obj.get("id")
    if not isinstance(value, str) or not value:
        raise UpstreamProtocolError(f"the provider's {what} has no id")
    return value
