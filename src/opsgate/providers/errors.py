"""Upstream failures, as the router sees them: each says whether another attempt may help.

They are `OpsgateError`s too, so the last one can go to the client as it is once retries and
fallbacks are spent (timeouts 504, connection failures 503, upstream 5xx and broken streams 502,
429 passed on with Retry-After, other 4xx passed on with the upstream's status).
"""

from __future__ import annotations

from opsgate.errors import OpsgateError

_RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
_DEPLOYMENT_FAULTS = frozenset({401, 403, 404})


class UpstreamError(OpsgateError):
    status = 502
    type = "upstream_error"
    default_code = "upstream_error"
    retryable = True
    """Another attempt on the same deployment may succeed."""
    failover = True
    """Another deployment may succeed where this one failed."""
    kind = "error"
    """A short label for metrics and traces (`timeout`, `connect`, `status_500`, ...)."""


class UpstreamTimeoutError(UpstreamError):
    status = 504
    default_code = "upstream_timeout"
    kind = "timeout"


class UpstreamConnectionError(UpstreamError):
    status = 503
    default_code = "upstream_unreachable"
    kind = "connect"


class StreamBrokenError(UpstreamError):
    default_code = "stream_broken"
    kind = "stream_broken"


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status."""

    def __init__(
        self, upstream_status: int, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=f"upstream_{upstream_status}")
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.retryable = upstream_status in _RETRYABLE_STATUSES
        # 401/403/404 from an upstream mean *our* deployment is misconfigured (key, model id):
        # another deployment may work, and the caller must not be told its own key is bad.
        self.failover = self.retryable or upstream_status in _DEPLOYMENT_FAULTS
        self.kind = f"status_{upstream_status}"
        if upstream_status == 429:
            self.status, self.type, self.code = 429, "rate_limit_error", "rate_limit_exceeded"
            if retry_after is not None:
                self.headers["retry-after"] = str(max(1, round(retry_after)))
        elif upstream_status in _DEPLOYMENT_FAULTS:
            self.status = 502
        elif 400 <= upstream_status < 500 and not self.retryable:
            self.status, self.type = upstream_status, "invalid_request_error"
        else:
            self.status = 502


class UpstreamProtocolError(UpstreamError):
    """The upstream's answer could not be understood."""

    default_code = "upstream_bad_response"
    kind = "protocol"
