"""Reading the dashboard's HTML forms: URL-encoded, small, parsed without a multipart library."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request

from opsgate.errors import BadRequestError, PayloadTooLargeError

MAX_FORM_BYTES = 64 * 1024
"""Far more than any dashboard form needs; a larger body is refused before it is parsed."""
FORM_TYPE = "application/x-www-form-urlencoded"

Form = ImmutableMultiDict[str, str]


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> Form:
    """The posted form fields (empty for a body-less POST, as htmx sends for a bare button)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The form is larger than the {limit} bytes allowed.")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise PayloadTooLargeError(f"The form is larger than the {limit} bytes allowed.")
    if not body:
        return ImmutableMultiDict()
    if kind != FORM_TYPE:
        raise BadRequestError(f"Dashboard forms are sent as {FORM_TYPE}, not {kind or 'nothing'}.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("The form is not valid UTF-8.") from None
    return ImmutableMultiDict(parse_qsl(text, keep_blank_values=True, max_num_fields=200))


def field(form: Form, name: str) -> str | None:
    """A stripped text field; None when it is missing or blank (an optional input left empty)."""
    value = (form.get(name) or "").strip()
    return value or None
