"""`POST /v1/feedback`: scores for answers, from an application's key or a browser's token.

Thin: authenticate (a feedback token in `x-opsgate-feedback-token`, else the key, which needs
`models:call`), read and check the body (feedback/metrics.py), hand the scores to the feedback
service, answer with their ids. A page on another origin may post when its origin is listed in
`feedback.cors_origins` (preflight answered here, nothing else of the API is opened).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission, require
from opsgate.api.responses import JSONResponse, error_response
from opsgate.config.feedback import FeedbackConfig
from opsgate.errors import NotFoundError, OpsgateError, ServiceUnavailableError
from opsgate.feedback.metrics import scores_of
from opsgate.feedback.scores import Score
from opsgate.feedback.service import Caller
from opsgate.feedback.tokens import HEADER
from opsgate.gateway import Gateway
from opsgate.web.body import read_json

_REASONS = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    503: "queue_full",
}


def ack(score: Score) -> dict[str, Any]:
    """What the sender learns back: ids and what was scored, nothing about the trace's owners
    (a browser holding a token must not learn the team, key or end user)."""
    return {
        "object": "feedback.score",
        "id": score.score_id,
        "metric": score.metric,
        "value": score.typed_value,
        "source": score.source,
        "trace_id": score.trace_id,
        "session_id": score.session_id,
        "created_at": score.created_at,
    }


async def _caller(request: Request, gateway: Gateway) -> Caller:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
    token = headers.get(HEADER)
    if token is not None:
        return Caller(token=gateway.feedback.verify_token(token.strip()))
    principal = await gateway.authenticate(headers)
    require(principal, Permission.MODELS_CALL)
    return Caller(principal=principal)


def _cors(request: Request, config: FeedbackConfig) -> dict[str, str]:
    origin = request.headers.get("origin")
    allowed = config.cors_origins
    if not origin or not ("*" in allowed or origin in allowed):
        return {}
    return {"access-control-allow-origin": origin, "vary": "origin"}


async def post_feedback(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    feedback = gateway.feedback
    config = feedback.config
    cors = _cors(request, config)
    if request.method == "OPTIONS":
        if not cors:
            return Response(status_code=403)
        allow = {
            "access-control-allow-methods": "POST",
            "access-control-allow-headers": f"content-type, authorization, {HEADER}",
            "access-control-max-age": "600",
        }
        return Response(status_code=204, headers={**cors, **allow})
    try:
        if not config.enabled:
            raise NotFoundError(
                "feedback is not configured: declare metrics under feedback.metrics",
                code="feedback_not_configured",
            )
        if gateway.writer is None:
            raise ServiceUnavailableError(
                "traces are disabled (traces.enabled: false), so there is nothing to score",
                code="traces_disabled",
            )
        caller = await _caller(request, gateway)
        inputs = scores_of(await read_json(request, config.max_body_bytes), config)
        scores = await feedback.submit(inputs, caller)
    except OpsgateError as exc:
        if feedback.metrics is not None:
            feedback.metrics.refusal(_REASONS.get(exc.status, "other"))
        return error_response(exc, cors)
    return JSONResponse({"object": "list", "data": [ack(s) for s in scores]}, headers=cors)


routes = [Route("/v1/feedback", post_feedback, methods=["POST", "OPTIONS"])]
