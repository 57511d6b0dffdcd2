"""Admin API of the prompt registry (`/admin/v1/prompts`): push a version, list, get, diff two
versions, move a label, roll one back, a label's history, render a version, and the metrics of
each version (usage rollups and feedback means).

Thin handlers over `PromptService`. Every look-up is in the caller's team (`namespace`): an
admin may name `team_id`, anyone else naming another team gets 404, as for an unknown prompt.
Moving `production` needs `prompts:promote` (403 before anything is looked up); every label
move writes a `prompts.label_move` audit entry (the service writes it, with the versions).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from opsgate.access.permissions import Permission, is_global
from opsgate.access.scoping import scope_usage_query
from opsgate.api.prompt_json import (
    info_json,
    label_json,
    move_json,
    version_json,
    version_summary,
)
from opsgate.api.responses import JSONResponse
from opsgate.api.trace_json import usage_json
from opsgate.errors import BadRequestError, ServiceUnavailableError
from opsgate.prompts.cache import Resolved
from opsgate.prompts.diff import changed_fields, side_by_side, unified
from opsgate.prompts.errors import PromptNotFoundError
from opsgate.prompts.metrics import feedback_by_version
from opsgate.prompts.model import PromptVersion, check_label, check_name
from opsgate.prompts.request import render_messages
from opsgate.prompts.service import PromptService, namespace
from opsgate.prompts.spec import PromptPush
from opsgate.prompts.variables import bind
from opsgate.store.usage import UsageDimension, UsageQuery
from opsgate.web.admin import AdminCall, admin_route
from opsgate.web.audit import append_or_log
from opsgate.web.queries import BUCKETS, parse_time

P = Permission
BASE = "/admin/v1/prompts"


class LabelMoveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)


class RenderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = None
    version: int | None = Field(default=None, ge=1)
    variables: dict[str, Any] = Field(default_factory=dict)


def _prompts(call: AdminCall) -> PromptService:
    service: PromptService = call.gateway.prompts
    return service


def _team(call: AdminCall) -> str:
    return namespace(call.who, call.query.get("team_id"))


def _name(call: AdminCall) -> str:
    return check_name(call.path("name"))


def _int(call: AdminCall, param: str) -> int | None:
    raw = call.query.get(param)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequestError(
            f"{param} must be a version number", code="invalid_value", param=param
        )
    return int(raw)


async def _pick(
    call: AdminCall, team: str, name: str, *, label: str | None, version: int | None
) -> PromptVersion:
    """The version a label or number names, else the latest; 404 when there is none."""
    store = _prompts(call).store
    if label is not None and version is not None:
        raise BadRequestError("give label or version, not both", code="invalid_value")
    if label is not None:
        found = await store.by_label(team, name, check_label(label))
        what = f"label {label!r}"
    else:
        if version is None:
            info = await store.find(team, name)
            if info is None:
                raise PromptNotFoundError(f"no prompt named {name!r}", param="name")
            version = info.latest_version
        found = await store.get(team, name, version)
        what = f"version {version}"
    if found is None:
        raise PromptNotFoundError(f"prompt {name!r} has no {what} (or no such prompt)")
    return found


async def _labels_of(call: AdminCall, team: str, name: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for state in await _prompts(call).store.labels(team, name):
        out.setdefault(state.version, []).append(state.label)
    return out


# --- handlers --------------------------------------------------------------------------------


async def push(call: AdminCall) -> Response:
    """Push a version (none when the content is unchanged) and point labels at it"""
    body: PromptPush = call.body
    team = namespace(call.who, body.team_id)
    pushed = await _prompts(call).push(
        call.who,
        team,
        body.name,
        body.spec(),
        message=body.message,
        actor=call.actor,
        labels=body.labels,
    )
    version = pushed.version
    detail = {"version": version.version, "created": pushed.created, "hash": version.content_hash}
    target = f"prompts/{team or '-'}/{body.name}"
    await append_or_log(call.gateway.audit, call.actor, "prompts.push", target, detail)
    call.audited()
    labels = await _labels_of(call, team, body.name)
    data = version_json(version, labels=labels.get(version.version, []))
    data["created"] = pushed.created
    data["moves"] = [move_json(body.name, m) for m in pushed.moves]
    return JSONResponse(data, status_code=201 if pushed.created else 200)


async def list_prompts(call: AdminCall) -> Response:
    """Prompts in your scope, with their latest version and labels"""
    asked = call.query.get("team_id")
    team = None if is_global(call.who) and asked is None else namespace(call.who, asked)
    found = await _prompts(call).store.list_prompts(team)
    return JSONResponse({"object": "list", "data": [info_json(p) for p in found]})


async def get_prompt(call: AdminCall) -> Response:
    """One version of a prompt: by `label`, by `version`, else the latest"""
    team, name = _team(call), _name(call)
    found = await _pick(
        call, team, name, label=call.query.get("label"), version=_int(call, "version")
    )
    labels = await _labels_of(call, team, name)
    return JSONResponse(version_json(found, labels=labels.get(found.version, [])))


async def list_versions(call: AdminCall) -> Response:
    """Every version of a prompt, newest first, with the labels on each"""
    team, name = _team(call), _name(call)
    versions = await _prompts(call).store.versions(team, name)
    if not versions:
        raise PromptNotFoundError(f"no prompt named {name!r}", param="name")
    labels = await _labels_of(call, team, name)
    data = [version_summary(v, labels.get(v.version, [])) for v in versions]
    return JSONResponse({"object": "list", "data": data})


async def diff(call: AdminCall) -> Response:
    """What changed between two versions (`from`, `to`): fields, a unified diff, line pairs"""
    team, name = _team(call), _name(call)
    old_no, new_no = _int(call, "from"), _int(call, "to")
    if old_no is None or new_no is None:
        raise BadRequestError("give both `from` and `to` versions", code="invalid_value")
    old = await _pick(call, team, name, label=None, version=old_no)
    new = await _pick(call, team, name, label=None, version=new_no)
    rows = [
        {
            "tag": r.tag,
            "left_no": r.left_no,
            "left": r.left,
            "right_no": r.right_no,
            "right": r.right,
        }
        for r in side_by_side(old, new)
    ]
    return JSONResponse(
        {
            "object": "prompt.diff",
            "name": name,
            "from": old.version,
            "to": new.version,
            "changed": changed_fields(old, new),
            "unified": unified(old, new),
            "rows": rows,
        }
    )


async def labels(call: AdminCall) -> Response:
    """Where each label of a prompt points"""
    team, name = _team(call), _name(call)
    found = await _prompts(call).store.labels(team, name)
    if not found and await _prompts(call).store.find(team, name) is None:
        raise PromptNotFoundError(f"no prompt named {name!r}", param="name")
    return JSONResponse({"object": "list", "data": [label_json(s) for s in found]})


async def move_label(call: AdminCall) -> Response:
    """Point a label at a version (`production` needs prompts:promote); audited"""
    body: LabelMoveBody = call.body
    team, name = _team(call), _name(call)
    moved = await _prompts(call).move(
        call.who, team, name, call.path("label"), body.version, actor=call.actor
    )
    call.audited()
    return JSONResponse(move_json(name, moved))


async def rollback(call: AdminCall) -> Response:
    """Point a label back where it was before its latest move; audited"""
    team, name = _team(call), _name(call)
    moved = await _prompts(call).rollback(
        call.who, team, name, call.path("label"), actor=call.actor
    )
    call.audited()
    return JSONResponse(move_json(name, moved))


async def history(call: AdminCall) -> Response:
    """Label moves of a prompt (one label with `label`), newest first"""
    team, name = _team(call), _name(call)
    label = call.query.get("label")
    moves = await _prompts(call).store.history(team, name, check_label(label) if label else None)
    if not moves and await _prompts(call).store.find(team, name) is None:
        raise PromptNotFoundError(f"no prompt named {name!r}", param="name")
    return JSONResponse({"object": "list", "data": [move_json(name, m) for m in moves]})


async def render(call: AdminCall) -> Response:
    """Render a version with variables: the messages and parameters it would send"""
    body: RenderBody = call.body
    team, name = _team(call), _name(call)
    found = await _pick(call, team, name, label=body.label, version=body.version)
    resolved = Resolved.of(found)
    messages = render_messages(resolved, bind(found.spec.variables, body.variables))
    call.audited()  # a read: nothing changed, nothing to audit
    return JSONResponse(
        {
            "object": "prompt.rendered",
            "name": name,
            "version": found.version,
            "model": found.spec.model,
            "messages": [_plain(m) for m in messages],
            "params": found.spec.params,
            "response_format": found.spec.response_format,
            "tools": list(found.spec.tools) if found.spec.tools is not None else None,
        }
    )


async def metrics(call: AdminCall) -> Response:
    """Per version: requests, tokens, cost, latency, errors and the mean of each feedback metric"""
    team, name = _team(call), _name(call)
    now = time.time()
    since = parse_time(call.query.get("since") or "7d", now, "since")
    until = parse_time(call.query.get("until") or "now", now, "until")
    if since >= until:
        raise BadRequestError("since must be before until", code="invalid_time", param="since")
    if call.gateway.traces is None:
        raise ServiceUnavailableError("traces are disabled in the config", code="traces_disabled")
    if await _prompts(call).store.find(team, name) is None:
        raise PromptNotFoundError(f"no prompt named {name!r}", param="name")
    filters: dict[UsageDimension, str] = {"prompt_name": name, "team_id": team}
    query = UsageQuery(since, until, BUCKETS["none"], ("prompt_version",), filters)
    rows = await call.gateway.traces.usage(scope_usage_query(call.who, query))
    feedback = await feedback_by_version(_prompts(call).engine, team, name, since, until)
    data = []
    for row in sorted(rows, key=lambda r: int(r.group.get("prompt_version") or 0)):
        version = row.group.get("prompt_version") or None
        entry = {**usage_json(row, "none"), "version": int(version) if version else None}
        entry["feedback"] = [
            {"metric": m.metric, "mean": m.mean, "count": m.count}
            for m in feedback.get(version or "", [])
        ]
        data.append(entry)
    return JSONResponse({"object": "list", "data": data, "since": since, "until": until})


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """A rendered message as the upstream gets it (one string, no gateway markers)."""
    content = message["content"]
    if isinstance(content, list):
        content = "".join(part["text"] for part in content)
    out = {"role": message["role"], "content": content}
    if "name" in message:
        out["name"] = message["name"]
    return out


_N = BASE + "/{name:str}"
routes = [
    admin_route("POST", BASE, push, P.PROMPTS_WRITE, body=PromptPush),
    admin_route("GET", BASE, list_prompts, P.PROMPTS_READ, query=("team_id",)),
    admin_route("GET", _N, get_prompt, P.PROMPTS_READ, query=("team_id", "label", "version")),
    admin_route("GET", _N + "/versions", list_versions, P.PROMPTS_READ, query=("team_id",)),
    admin_route("GET", _N + "/diff", diff, P.PROMPTS_READ, query=("team_id", "from", "to")),
    admin_route("GET", _N + "/labels", labels, P.PROMPTS_READ, query=("team_id",)),
    admin_route(
        "POST",
        _N + "/labels/{label:str}",
        move_label,
        P.PROMPTS_WRITE,
        query=("team_id",),
        body=LabelMoveBody,
    ),
    admin_route(
        "POST",
        _N + "/labels/{label:str}/rollback",
        rollback,
        P.PROMPTS_WRITE,
        query=("team_id",),
    ),
    admin_route("GET", _N + "/history", history, P.PROMPTS_READ, query=("team_id", "label")),
    admin_route(
        "GET",
        _N + "/metrics",
        metrics,
        P.PROMPTS_READ,
        P.USAGE_READ,
        query=("team_id", "since", "until"),
    ),
    admin_route(
        "POST", _N + "/render", render, P.PROMPTS_READ, query=("team_id",), body=RenderBody
    ),
]
