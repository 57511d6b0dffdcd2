"""`GET /v1/prompts/{name}`: a prompt version for applications that render it themselves.

`?label=production` (the default) or `?version=7`. The answer carries `ETag: "<content hash>"`
and `Cache-Control: no-cache`, so a client revalidates each time with `If-None-Match` and gets
`304 Not Modified` (no body) until the label moves to a version with other content. Served
from the same in-memory cache as `model: "prompt:..."`, in the caller's team; any key that may
call models (or read prompts) may fetch.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission, allowed
from opsgate.api.prompt_json import version_json
from opsgate.api.responses import JSONResponse, error_response
from opsgate.errors import BadRequestError, OpsgateError, PermissionDeniedError
from opsgate.gateway import Gateway
from opsgate.prompts.model import PromptRef, check_label, check_name
from opsgate.prompts.service import namespace
from opsgate.web.queries import check_known

_PARAMS = frozenset({"label", "version"})


def _ref(request: Request) -> PromptRef:
    params = request.query_params
    check_known(params, _PARAMS)
    name = check_name(request.path_params["name"])
    label, version = params.get("label"), params.get("version")
    if label is not None and version is not None:
        raise BadRequestError("give label or version, not both", code="invalid_value")
    if version is not None:
        if not version.isdigit() or int(version) < 1:
            raise BadRequestError("version must be a number", code="invalid_value", param="version")
        return PromptRef(name, version=int(version))
    return PromptRef(name, label=check_label(label) if label is not None else None)


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` header names `etag` (weak or strong, or `*`)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


async def get_prompt(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
    try:
        who = await gateway.authenticate(headers)
        if not (allowed(who, Permission.MODELS_CALL) or allowed(who, Permission.PROMPTS_READ)):
            raise PermissionDeniedError(
                f"role {who.role.value!r} may neither call models nor read prompts",
                code="permission_denied",
            )
        ref = _ref(request)
        resolved = await gateway.prompts.resolve(namespace(who), ref)
    except OpsgateError as exc:
        return error_response(exc)
    version = resolved.version
    headers = {"etag": version.etag, "cache-control": "no-cache"}
    if matches(request.headers.get("if-none-match"), version.etag):
        return Response(status_code=304, headers=headers)
    data = version_json(version)
    if ref.label is not None:
        data["label"] = ref.label
    return JSONResponse(data, headers=headers)


routes = [Route("/v1/prompts/{name:str}", get_prompt, methods=["GET"])]
