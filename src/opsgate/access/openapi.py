"""The admin API's OpenAPI 3.1 document, built from the same route table the app serves.

Request bodies come from the pydantic models that validate them, so the document cannot claim
a field the server rejects. Routes other parts add under /admin/v1 (traces, usage, cache, ...)
are listed too, with the summary their handler's docstring gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from opsgate._version import __version__
from opsgate.access.permissions import Permission

_REF = "#/components/schemas/{model}"
_ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}
_STATUS_TEXT = {
    "400": "Malformed request (bad JSON, unknown query parameter)",
    "401": "Missing, malformed, unknown, expired, revoked or disabled key",
    "403": "The caller's role lacks a permission this route needs",
    "404": "No such id, or the id is outside the caller's scope (same answer)",
    "409": "Conflicts with stored data",
    "422": "The body failed validation (unknown fields are rejected)",
}


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    summary: str
    permissions: tuple[Permission, ...] = ()
    body: type[BaseModel] | None = None
    query: tuple[str, ...] = ()
    status: int = 200
    tags: tuple[str, ...] = field(default=())


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


def _operation(spec: RouteSpec, body_refs: dict[type[BaseModel], Any]) -> dict[str, Any]:
    needs = [p.value for p in spec.permissions]
    op: dict[str, Any] = {
        "summary": spec.summary,
        "operationId": f"{spec.method.lower()}_{spec.path.strip('/').replace('/', '_')}",
        "tags": list(spec.tags) or ["admin"],
        "x-opsgate-permissions": needs,
        "parameters": _path_params(spec.path)
        + [{"name": q, "in": "query", "schema": {"type": "string"}} for q in spec.query],
        "responses": {
            str(spec.status): {
                "description": "OK",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **{
                code: {"description": text, "content": _ERROR_JSON}
                for code, text in _STATUS_TEXT.items()
            },
        },
    }
    if needs:
        op["description"] = "Needs: " + ", ".join(needs) + " (see docs/access.md)."
    if spec.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_refs[spec.body]}},
        }
    return op


def document(specs: Sequence[RouteSpec], others: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """OpenAPI for `specs`, plus `(method, path, summary)` for other admin routes."""
    models = sorted({s.body for s in specs if s.body is not None}, key=lambda m: m.__name__)
    refs, defs = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    body_refs = {m: refs[(m, "validation")] for m in models}
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec, body_refs)
    for method, path, summary in others:
        paths.setdefault(path, {}).setdefault(
            method.lower(), _operation(RouteSpec(method, path, summary), body_refs)
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "opsgate admin API",
            "version": __version__,
            "description": "Keys, users, teams, budgets and the gateway's admin reads. "
            "Authenticate with `Authorization: Bearer <master key or og- key>`.",
        },
        "components": {
            "schemas": {**defs.get("$defs", {}), "Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
    }
