"""Who a request is about: the caller's own labels (end user, session, metadata), read once.

The end user comes from `x-opsgate-end-user`, else the body's `user`; the session from
`x-opsgate-session-id`, else the metadata's `session_id`; metadata from the body's `metadata`
and the `x-opsgate-metadata` header (a JSON object; the header wins key by key). Every id is
checked by the same rule that export and erasure apply (`check_id`), so an id the gateway
accepted and stored can always be exported and erased later.

`pseudonym` lives here too: the audit log, the erasure tombstones and anything else that must
name an end user without keeping the id use it, and none of them should import another.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from opsgate.errors import BadRequestError

MAX_ID_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

END_USER_HEADER = "x-opsgate-end-user"
SESSION_HEADER = "x-opsgate-session-id"
METADATA_HEADER = "x-opsgate-metadata"


@dataclass(frozen=True, slots=True)
class CallerLabels:
    """The labels a caller put on one request; `RequestContext.labels`."""

    end_user: str | None = None
    session_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


NO_LABELS = CallerLabels()


def check_id(value: str, *, what: str = "end user id", param: str | None = None) -> None:
    """400 for ids no caller could sensibly send: empty, too long, or with control characters."""
    problem = None
    if not value or not value.strip():
        problem = f"the {what} is empty"
    elif len(value) > MAX_ID_LENGTH:
        problem = f"the {what} is longer than {MAX_ID_LENGTH} characters"
    elif _CONTROL.search(value):
        problem = f"the {what} contains control characters"
    if problem is not None:
        code = "invalid_end_user" if what == "end user id" else "invalid_session_id"
        raise BadRequestError(problem, code=code, param=param)


def check_end_user(end_user: str) -> None:
    """The rule for an end user id wherever one arrives (requests, export, erasure)."""
    check_id(end_user, param="end_user")


def caller_labels(headers: Mapping[str, str], params: Mapping[str, Any]) -> CallerLabels:
    """Read and validate the labels of one request; a bad one is a 400 naming its field."""
    metadata = _metadata(headers, params)
    session = headers.get(SESSION_HEADER) or metadata.get("session_id") or None
    if session is not None:
        check_id(session, what="session id", param=_session_param(headers))
    return CallerLabels(_end_user(headers, params), session, metadata)


def _end_user(headers: Mapping[str, str], params: Mapping[str, Any]) -> str | None:
    header = headers.get(END_USER_HEADER)
    if header:
        check_id(header, param=END_USER_HEADER)
        return header
    user = params.get("user")
    if user is None or user == "":
        return None
    if not isinstance(user, str):
        kind = type(user).__name__
        raise BadRequestError(
            f"user must be a string, got {kind}", code="invalid_end_user", param="user"
        )
    check_id(user, param="user")
    return user


def _session_param(headers: Mapping[str, str]) -> str:
    return SESSION_HEADER if headers.get(SESSION_HEADER) else "metadata.session_id"


def _metadata(headers: Mapping[str, str], params: Mapping[str, Any]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    body_meta = params.get("metadata")
    if isinstance(body_meta, dict):
        metadata.update({str(k): _text(v) for k, v in body_meta.items()})
    raw = headers.get(METADATA_HEADER)
    if raw:
        try:
            header_meta = orjson.loads(raw)
        except orjson.JSONDecodeError:
            header_meta = None
        if not isinstance(header_meta, dict):
            raise BadRequestError(
                f"header {METADATA_HEADER} must be a JSON object",
                code="invalid_header",
                param=METADATA_HEADER,
            )
        metadata.update({str(k): _text(v) for k, v in header_meta.items()})
    return metadata


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def pseudonym(kind: str, value: str) -> str:
    """A stable stand-in for a personal identifier that must not be kept (an erased end user):
    whoever knows the id can recompute it and find the entry; the record alone does not reveal
    it."""
    digest = hashlib.sha256(f"opsgate:{kind}:{value}".encode()).hexdigest()[:32]
    return f"{kind}:sha256:{digest}"
