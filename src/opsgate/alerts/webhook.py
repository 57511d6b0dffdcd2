"""The webhook sink: POST each alert as JSON, signed so the receiver can trust it.

Body: the alert's JSON (`format="json"`), or `{"text": ...}` that Slack, Mattermost, Rocket.Chat
and Discord (`/slack` URLs) incoming webhooks accept (`format="slack"`). With a secret, the
header `x-opsgate-signature: sha256=<hex HMAC-SHA256 of the raw body>` is added (GitHub's
scheme); the body carries the alert's id and time, so a receiver can also refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

import aiohttp
import orjson

from opsgate.alerts.channel import DeliveryError
from opsgate.alerts.events import Alert

SIGNATURE_HEADER = "x-opsgate-signature"
WebhookFormat = Literal["json", "slack"]
_ICONS = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def sign(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """For receivers (and tests): does `header` sign `body` with `secret`?"""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def render(alert: Alert, fmt: WebhookFormat) -> bytes:
    if fmt == "slack":
        icon = _ICONS.get(alert.severity, "")
        return orjson.dumps({"text": f"{icon} *{alert.kind}* {alert.message}".strip()})
    return orjson.dumps(alert.to_json())


class WebhookSink:
    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        format: WebhookFormat = "json",
        timeout: float = 10.0,
        name: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = url
        self.secret = secret
        self.format: WebhookFormat = format
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.name = name or f"webhook:{url}"
        self._session = session
        self._owns_session = session is None

    async def send(self, alert: Alert) -> None:
        body = render(alert, self.format)
        headers = {"content-type": "application/json", "user-agent": "opsgate-alerts"}
        headers["x-opsgate-alert-id"] = alert.id
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                self.url, data=body, headers=headers, timeout=self.timeout
            ) as resp:
                if resp.status < 300:
                    return
                retryable = resp.status >= 500 or resp.status in (408, 425, 429)
                raise DeliveryError(f"HTTP {resp.status}", retryable=retryable)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None
