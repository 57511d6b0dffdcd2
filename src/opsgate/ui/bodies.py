"""Reading a trace's stored bodies for a person: the one sensitive read of the dashboard.

It goes through `gateway.bodies.read` (compliance/bodies.py), the same reader the admin API
uses: the `trace.read_bodies` audit entry is written first, then the bodies are decrypted. An
audit log that cannot record the read stops it (503). Callers check `traces:read_bodies`.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from starlette.requests import Request

from opsgate.gateway import Gateway
from opsgate.trace import TraceRecord
from opsgate.web.audit import actor_of


@dataclass(frozen=True, slots=True)
class Body:
    text: str
    is_json: bool


@dataclass(frozen=True, slots=True)
class Bodies:
    request: Body | None
    response: Body | None


def _body(raw: bytes | None) -> Body | None:
    """Pretty JSON when the body is JSON, else the text (undecodable bytes shown replaced)."""
    if raw is None:
        return None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Body(raw.decode("utf-8", "replace"), is_json=False)
    return Body(orjson.dumps(parsed, option=orjson.OPT_INDENT_2).decode(), is_json=True)


async def read_bodies(request: Request, gateway: Gateway, record: TraceRecord) -> Bodies:
    """The trace's bodies as text, audited under the principal in `request`'s scope."""
    raw_request, raw_response = await gateway.bodies.read_or_refuse(record, actor_of(request.scope))
    return Bodies(_body(raw_request), _body(raw_response))
