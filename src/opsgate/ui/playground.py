"""The Prompts page's playground: render a version with variables typed into a form, and run it
through the gateway's own chat pipeline as the logged-in key.

A run is an ordinary request in every way that matters: it is authenticated as the session's
key (allowed models included), admitted against its limits and budget, guarded, cached, routed
and traced, with the prompt name, version and label on its trace and `source: playground` in
its metadata. Only the model may be any the key may use, whatever the version's `overrides`:
trying a version on another model is what a playground is for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opsgate.chat import ChatRequest, ChatResponse
from opsgate.errors import BadRequestError, OpsgateError
from opsgate.identity import METADATA_HEADER
from opsgate.pipeline.context import ChatCall, RequestContext
from opsgate.prompts.cache import Resolved
from opsgate.prompts.model import PromptRef
from opsgate.prompts.request import PromptCall, PromptUse, apply, join_parts, render_messages
from opsgate.prompts.variables import Variable, bind
from opsgate.types import JSONObject
from opsgate.ui.forms import Form
from opsgate.ui.visit import Visit

FIELD_PREFIX = "var."
"""Variables arrive as form fields `var.<name>`."""
_PLAYGROUND_METADATA = json.dumps({"source": "playground"})


@dataclass(slots=True)
class Outcome:
    """What the playground shows: the rendered messages, and a run's answer or error."""

    messages: list[JSONObject] = field(default_factory=list)
    model: str | None = None
    answer: str | None = None
    trace_id: str | None = None
    tokens: int | None = None
    error: str | None = None
    status: int = 200


def variables_from(form: Form, declared: dict[str, Variable]) -> dict[str, Any]:
    """Typed values from the form's text fields; a blank field is "not sent"."""
    values: dict[str, Any] = {}
    for name, var in declared.items():
        raw = (form.get(FIELD_PREFIX + name) or "").strip()
        if not raw:
            continue
        if var.type == "string":
            values[name] = form.get(FIELD_PREFIX + name)
            continue
        try:
            values[name] = json.loads(raw)
        except ValueError:
            raise BadRequestError(
                f"variable {name!r} must be {var.type} (JSON: 3, true, [1, 2], {{}}), got {raw!r}",
                code="invalid_variable_type",
                param=f"variables.{name}",
            ) from None
    return values


def render_only(resolved: Resolved, values: dict[str, Any]) -> Outcome:
    messages = render_messages(resolved, bind(resolved.version.spec.variables, values))
    return Outcome(messages=join_parts(messages) or messages, model=resolved.version.spec.model)


async def run(
    visit: Visit, resolved: Resolved, values: dict[str, Any], model: str | None, label: str | None
) -> Outcome:
    """Render, then send through the chat pipeline as the session's key (non-streaming)."""
    version = resolved.version
    call = PromptCall(PromptRef(version.name, version=version.version), values, model)
    request = apply(resolved, ChatRequest(model="prompt", messages=[]), call, any_model=True)
    ctx = RequestContext(headers={METADATA_HEADER: _PLAYGROUND_METADATA})
    ctx.principal = visit.principal
    ctx.prompt = PromptUse(version.name, version.version, label, request.model)
    outcome = Outcome(messages=join_parts(request.messages) or request.messages)
    outcome.model, outcome.trace_id = request.model, ctx.trace_id
    try:
        answer = await visit.gateway.runtime.chat(ChatCall(ctx, request))
    except OpsgateError as exc:  # refused or failed: shown beside the rendered prompt
        outcome.error, outcome.status = exc.message, exc.status
        return outcome
    if isinstance(answer, ChatResponse):
        outcome.answer = answer.text
        usage = answer.usage
        outcome.tokens = usage.total_tokens if usage is not None else None
    return outcome
