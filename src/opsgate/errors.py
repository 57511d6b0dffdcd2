"""The exception hierarchy: each class maps one-to-one to an HTTP status and an OpenAI error type.

Every part of the gateway raises only these; the API layer turns them into OpenAI-shaped bodies,
so a client never sees a stack trace.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OpsgateError(Exception):
    """Base of every error a client may see."""

    status: int = 500
    type: str = "api_error"
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.headers = headers or {}

    def to_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


class BadRequestError(OpsgateError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class AuthenticationError(OpsgateError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(OpsgateError):
    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class NotFoundError(OpsgateError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class PayloadTooLargeError(OpsgateError):
    status = 413
    type = "invalid_request_error"
    default_code = "payload_too_large"


class UnprocessableError(OpsgateError):
    status = 422
    type = "invalid_request_error"
    default_code = "unprocessable_entity"


class RateLimitError(OpsgateError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers.setdefault("retry-after", str(max(1, round(retry_after))))


class BadGatewayError(OpsgateError):
    status = 502
    type = "upstream_error"
    default_code = "bad_gateway"


class ServiceUnavailableError(OpsgateError):
    status = 503
    type = "upstream_error"
    default_code = "service_unavailable"


class GatewayTimeoutError(OpsgateError):
    status = 504
    type = "upstream_error"
    default_code = "upstream_timeout"
