"""A chat request that names a prompt, and the request it becomes once rendered.

Two ways to name one: `model: "prompt:support-triage@production"` (or `@7`; no selector means
`@production`) with `variables` in the body, or `prompt: {name, label | version, variables}`
with any `model` (the prompt's own, a placeholder such as `"prompt"`, or an override where the
prompt allows one). The rendered messages come first; the request's own `messages` (user,
assistant and tool turns only: the system prompt is the prompt's) follow them. The prompt's
model, `params`, `response_format` and `tools` apply; a request may set another value only for
fields the prompt lists in `overrides`, and freely sets any field the prompt leaves alone.
`variables` and `prompt` never reach the upstream.

A variable is untrusted input: every piece of text a variable put into a message becomes a
content part marked `untrusted` (guard/content.py), so the input guard scans it as it scans a
tool result, even inside a system message, instead of trusting it as the prompt's own text.
After the guard, `join_parts` makes each such message one string again, so the upstream and
the cache see exactly the rendered text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from opsgate.chat import ChatRequest
from opsgate.errors import BadRequestError
from opsgate.guard.content import MARK, unmarked
from opsgate.prompts.cache import Resolved
from opsgate.prompts.errors import PromptParamFixedError, TemplateLimitError
from opsgate.prompts.model import MODEL_PREFIX, PromptRef, check_label, check_name, parse_reference
from opsgate.prompts.template import MAX_OUTPUT_CHARS, Limits
from opsgate.prompts.variables import bind
from opsgate.types import JSONObject

JOIN = "opsgate_prompt_parts"
"""Set on a rendered message split into parts; `join_parts` joins that many parts again."""
PLACEHOLDER_MODELS = frozenset({"", "prompt"})
_APPENDABLE = frozenset({"user", "assistant", "tool", "function"})
_PROMPT_FIELDS = ("prompt", "variables")


@dataclass(frozen=True, slots=True)
class PromptCall:
    """What a request asked for: the reference, its variables, and a model of its own (the
    `prompt` object form only)."""

    ref: PromptRef
    variables: Any
    model: str | None = None


@dataclass(frozen=True, slots=True)
class PromptUse:
    """The version a request rendered: what its trace records."""

    name: str
    version: int
    label: str | None
    model: str
    """The model the rendered request asks for (the prompt's, or an allowed override)."""
    request: ChatRequest | None = field(default=None, compare=False)
    """The rendered request, once rendering succeeded."""

    @property
    def text(self) -> str:
        return f"{self.name}@{self.version}"

    def sent(self) -> ChatRequest | None:
        """The rendered request as the upstream gets it (one string per message, no gateway
        markers): what a trace stores as its request body, rather than the bare reference."""
        if self.request is None:
            return None
        messages = unmarked(self.request.messages)
        return replace(self.request, messages=join_parts(messages) or messages)


def read_call(req: ChatRequest) -> PromptCall | None:
    """The prompt a request names, or None for an ordinary request; 400 when it is named
    badly (twice, an unknown form, `variables` without a prompt)."""
    obj = req.params.get("prompt")
    if req.model.startswith(MODEL_PREFIX):
        if obj is not None:
            raise BadRequestError(
                "name the prompt once: either `model: prompt:...` or a `prompt` object",
                code="prompt_named_twice",
                param="prompt",
            )
        ref = parse_reference(req.model.removeprefix(MODEL_PREFIX))
        return PromptCall(ref, req.params.get("variables"))
    if obj is None:
        if "variables" in req.params:
            raise BadRequestError(
                "`variables` needs a prompt: `model: prompt:<name>` or a `prompt` object",
                code="variables_without_prompt",
                param="variables",
            )
        return None
    return _object_call(obj, req)


def _object_call(obj: Any, req: ChatRequest) -> PromptCall:
    if not isinstance(obj, dict):
        raise BadRequestError("`prompt` must be an object", code="invalid_type", param="prompt")
    unknown = sorted(set(obj) - {"name", "label", "version", "variables"})
    if unknown:
        raise BadRequestError(
            f"unknown field prompt.{unknown[0]}; known: name, label, version, variables",
            code="unknown_parameter",
            param=f"prompt.{unknown[0]}",
        )
    name = check_name(obj.get("name"), "prompt.name")
    label, version = obj.get("label"), obj.get("version")
    if label is not None and version is not None:
        raise BadRequestError(
            "give prompt.label or prompt.version, not both", code="invalid_value", param="prompt"
        )
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise BadRequestError(
            "prompt.version must be an integer", code="invalid_type", param="prompt.version"
        )
    if "variables" in obj and "variables" in req.params:
        raise BadRequestError(
            "give variables once: in the body or in the prompt object",
            code="invalid_value",
            param="variables",
        )
    if label is not None:
        ref = PromptRef(name, label=check_label(label, "prompt.label"))
    else:
        ref = PromptRef(name, version=version)
    variables = obj["variables"] if "variables" in obj else req.params.get("variables")
    model = None if req.model in PLACEHOLDER_MODELS else req.model
    return PromptCall(ref, variables, model)


def apply(
    resolved: Resolved,
    req: ChatRequest,
    call: PromptCall,
    *,
    any_model: bool = False,
    mark: bool = True,
) -> ChatRequest:
    """The request to serve: the rendered messages, then the request's own turns, with the
    prompt's model and parameters (overridden only where the prompt allows; `any_model`: the
    dashboard's playground, which tries a version on any model the caller may use; `mark`:
    see `render_messages`)."""
    spec = resolved.version.spec
    values = bind(spec.variables, call.variables)
    extra = _extra_turns(req.messages)
    messages = render_messages(resolved, values, mark=mark)
    params = {k: v for k, v in req.params.items() if k not in _PROMPT_FIELDS}
    fixed: dict[str, Any] = {**spec.params}
    if spec.response_format is not None:
        fixed["response_format"] = spec.response_format
    if spec.tools is not None:
        fixed["tools"] = list(spec.tools)
    for name, value in fixed.items():
        if name in params and params[name] != value and name not in spec.overrides:
            raise _fixed(name, resolved)
        params.setdefault(name, value)
    model = spec.model
    if call.model is not None and call.model != spec.model:
        if "model" not in spec.overrides and not any_model:
            raise _fixed("model", resolved)
        model = call.model
    return ChatRequest(model=model, messages=[*messages, *extra], stream=req.stream, params=params)


def _fixed(name: str, resolved: Resolved) -> PromptParamFixedError:
    v = resolved.version
    allowed = ", ".join(v.spec.overrides) or "none"
    return PromptParamFixedError(
        f"{name!r} is fixed by prompt {v.name!r} version {v.version}; a request may override "
        f"only: {allowed}",
        param=name,
    )


def _extra_turns(messages: list[JSONObject]) -> list[JSONObject]:
    for i, message in enumerate(messages):
        if message.get("role") not in _APPENDABLE:
            raise BadRequestError(
                f"messages[{i}]: a request naming a prompt may add user, assistant and tool "
                "turns only; the system prompt is the prompt's",
                code="invalid_value",
                param=f"messages[{i}].role",
            )
    return messages


def render_messages(
    resolved: Resolved, values: dict[str, Any], *, mark: bool = True
) -> list[JSONObject]:
    """Each message template rendered; a message that renders to nothing is left out (so a
    whole message can sit under a condition). The output budget is shared by all messages.

    With `mark` (the input guard will scan this request), text from variables becomes parts
    marked untrusted; without it every message is one string at once (nothing to scan)."""
    out: list[JSONObject] = []
    left = MAX_OUTPUT_CHARS
    for message, template in zip(resolved.version.spec.messages, resolved.templates, strict=True):
        if template.static is not None:  # no tags: the text as it is, nothing to render
            pieces = [(template.static, False)] if template.static else []
        else:
            pieces = template.render(values, Limits(output_chars=left))
        left -= sum(len(text) for text, _ in pieces)
        if left < 0:
            raise TemplateLimitError(f"the rendered prompt is over {MAX_OUTPUT_CHARS} characters")
        if not pieces:
            continue
        rendered: JSONObject = {"role": message.role}
        if mark and any(variable for _, variable in pieces):
            parts = [
                {"type": "text", "text": text, MARK: True}
                if variable
                else {"type": "text", "text": text}
                for text, variable in pieces
            ]
            rendered["content"] = parts
            rendered[JOIN] = len(parts)
        else:
            rendered["content"] = (
                pieces[0][0] if len(pieces) == 1 else "".join(t for t, _ in pieces)
            )
        if message.name:
            rendered["name"] = message.name
        out.append(rendered)
    return out


def join_parts(messages: list[JSONObject]) -> list[JSONObject] | None:
    """The messages with each split rendered message one string again; None when none is.
    Text the guard added to such a message (its spotlighting note) follows on a new paragraph,
    as the guard adds it to a string."""
    if not any(JOIN in m for m in messages if isinstance(m, dict)):
        return None
    out: list[JSONObject] = []
    for message in messages:
        if not isinstance(message, dict) or JOIN not in message:
            out.append(message)
            continue
        clean = {k: v for k, v in message.items() if k != JOIN}
        content = clean.get("content")
        if isinstance(content, list):
            ours, added = content[: message[JOIN]], content[message[JOIN] :]
            texts = ["".join(_text(p) for p in ours), *(_text(p) for p in added)]
            clean["content"] = "\n\n".join(t for t in texts if t)
        out.append(clean)
    return out


def _text(part: Any) -> str:
    if isinstance(part, dict) and isinstance(part.get("text"), str):
        return str(part["text"])
    return ""
