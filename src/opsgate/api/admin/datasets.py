"""Admin API of datasets (`/admin/v1/datasets`): create, list, show, add and remove rows, upload
JSONL, read rows, export, and the export's report.

Thin handlers over `DatasetService` (feedback/datasets/service.py), which applies the scope (a
dataset of another team answers 404). Every change answers the version it made. Reading row
content and exporting need `traces:read_bodies` (the rows are prompts and answers) and are
audited before anything is opened; an export without PII redaction (`redact=false`) also needs
`datasets:manage`, and its audit entry says so.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response, StreamingResponse

from opsgate.access.permissions import Permission, require
from opsgate.api.responses import JSONResponse
from opsgate.errors import BadRequestError
from opsgate.feedback.datasets import importer
from opsgate.feedback.datasets.export import report_json
from opsgate.feedback.datasets.filling import ChangeResult
from opsgate.feedback.datasets.model import DatasetInfo, StoredRow, VersionInfo
from opsgate.feedback.datasets.requests import DatasetCreate, DatasetRemove, RowSources
from opsgate.feedback.datasets.rows import RowContent
from opsgate.feedback.datasets.service import DatasetService
from opsgate.web.admin import AdminCall, admin_route
from opsgate.web.queries import flag

P = Permission
BASE = "/admin/v1/datasets"
D = BASE + "/{dataset}"
MEDIA_TYPE = "application/jsonl"


def _datasets(call: AdminCall) -> DatasetService:
    service: DatasetService = call.gateway.datasets
    return service


def dataset_json(info: DatasetInfo, rows: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "object": "dataset",
        "id": info.id,
        "name": info.name,
        "team_id": info.team_id,
        "description": info.description,
        "version": info.version,
        "created_at": info.created_at,
        "created_by": info.created_by,
        "updated_at": info.updated_at,
    }
    if rows is not None:
        data["rows"] = rows
    return data


def version_json(v: VersionInfo) -> dict[str, Any]:
    return {
        "object": "dataset.version",
        "version": v.version,
        "change": v.change,
        "added": v.added,
        "removed": v.removed,
        "detail": v.detail,
        "created_at": v.created_at,
        "created_by": v.created_by,
    }


def change_json(result: ChangeResult) -> dict[str, Any]:
    return {
        "object": "dataset.change",
        "dataset": dataset_json(result.dataset),
        "version": result.version,
        "added": result.added,
        "removed": result.removed,
        "matched": result.matched,
        "skipped": result.skipped,
        "truncated": result.truncated,
    }


def row_json(row: StoredRow, content: RowContent | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "object": "dataset.row",
        "id": row.id,
        "added_in": row.added_in,
        "source_trace_id": row.source_trace_id,
        "model": row.model,
        "input_hash": row.input_hash,
        "has_output": row.has_output,
        "has_reference": row.has_reference,
        "scores": row.scores,
        "metadata": row.metadata,
        "created_at": row.created_at,
    }
    if content is not None:
        data.update(
            messages=content.messages,
            tools=content.tools,
            output=content.output,
            reference=content.reference,
        )
    return data


def _int(call: AdminCall, name: str) -> int | None:
    raw = call.query.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be an integer", param=name) from None


async def list_datasets(call: AdminCall) -> Response:
    """The datasets in your scope, with their newest version's row count"""
    listed = await _datasets(call).listed(call.who)
    data = [dataset_json(info, rows) for info, rows in listed]
    return JSONResponse({"object": "list", "data": data, "next_cursor": None})


async def create_dataset(call: AdminCall) -> Response:
    """Create a dataset (version 1) from trace filters, a review queue, trace ids or rows"""
    result = await _datasets(call).create(call.who, call.body, call.actor)
    return JSONResponse(change_json(result), 201)


async def get_dataset(call: AdminCall) -> Response:
    """A dataset with its versions"""
    info, rows, versions = await _datasets(call).show(call.who, call.path("dataset"))
    body = dataset_json(info, rows)
    body["versions"] = [version_json(v) for v in versions]
    return JSONResponse(body)


async def delete_dataset(call: AdminCall) -> Response:
    """Delete a dataset with every version"""
    info = await _datasets(call).delete(call.who, call.path("dataset"))
    return JSONResponse({"object": "dataset", "id": info.id, "deleted": True})


async def add_rows(call: AdminCall) -> Response:
    """Add rows (a new version): from trace filters, a review queue, trace ids or inline rows"""
    result = await _datasets(call).add(call.who, call.path("dataset"), call.body, call.actor)
    return JSONResponse(change_json(result), 201 if result.added else 200)


async def remove_rows(call: AdminCall) -> Response:
    """Remove rows by id or by source trace (a new version; older ones keep them)"""
    result = await _datasets(call).remove(call.who, call.path("dataset"), call.body, call.actor)
    return JSONResponse(change_json(result))


async def import_rows(call: AdminCall) -> Response:
    """Upload rows as JSONL (one version, all lines or none)"""
    lines = importer.lines(call.request.stream())
    result = await _datasets(call).import_lines(call.who, call.path("dataset"), lines, call.actor)
    return JSONResponse(change_json(result), 201)


async def list_rows(call: AdminCall) -> Response:
    """A version's rows in the order they were added (`include_content=true`: the messages,
    output and reference, an audited read)"""
    content = flag(call.query, "include_content")
    if content:
        require(call.who, P.TRACES_READ_BODIES)
    limit = _int(call, "limit") or 50
    if not 1 <= limit <= 1000:
        raise BadRequestError("limit must be between 1 and 1000", param="limit")
    after = _after(call.query.get("cursor"))
    info, version, rows = await _datasets(call).rows(
        call.who,
        call.path("dataset"),
        version=_int(call, "version"),
        after=after,
        limit=limit + 1,
        content=content,
        actor=call.actor,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = f"{rows[-1][0].added_in}.{rows[-1][0].seq}" if more and rows else None
    return JSONResponse(
        {
            "object": "list",
            "dataset_id": info.id,
            "version": version,
            "data": [row_json(row, opened) for row, opened in rows],
            "next_cursor": cursor,
        }
    )


def _after(raw: str | None) -> tuple[int, int] | None:
    if raw is None:
        return None
    added, _, seq = raw.partition(".")
    try:
        return int(added), int(seq)
    except ValueError:
        raise BadRequestError("invalid cursor: pass next_cursor", param="cursor") from None


async def export(call: AdminCall) -> Response:
    """Stream a version as JSONL: `format` openai-chat, preference or eval; PII redacted unless
    `redact=false` (needs datasets:manage; audited); exact duplicates dropped. The report
    (rows, tokens, duplicates, redactions) is at `/exports/{x-opsgate-export-id}` after."""
    redact = "redact" not in call.query or flag(call.query, "redact")
    if not redact:
        require(call.who, P.DATASETS_MANAGE)
    info, run, rows = await _datasets(call).export(
        call.who,
        call.path("dataset"),
        fmt=call.query.get("format") or "openai-chat",
        version=_int(call, "version"),
        redact=redact,
        metric=call.query.get("metric"),
        actor=call.actor,
    )
    call.audited()
    name = f"{info.name}-v{run.report.version}-{run.report.format}.jsonl"
    headers = {
        "content-disposition": f'attachment; filename="{name}"',
        "x-opsgate-export-id": run.report.id,
        "x-opsgate-dataset-version": str(run.report.version),
        "x-opsgate-dataset-rows": str(rows),
        "cache-control": "no-store",
    }
    return StreamingResponse(run.lines(), media_type=MEDIA_TYPE, headers=headers)


async def export_report(call: AdminCall) -> Response:
    """What an export wrote: rows, tokens, duplicates dropped, rows skipped, PII replaced"""
    report = await _datasets(call).export_report(
        call.who, call.path("dataset"), call.path("export_id")
    )
    return JSONResponse(report_json(report))


_EXPORT_QUERY = ("format", "version", "redact", "metric")
routes = [
    admin_route("GET", BASE, list_datasets, P.DATASETS_READ),
    admin_route("POST", BASE, create_dataset, P.DATASETS_MANAGE, body=DatasetCreate),
    admin_route("GET", D, get_dataset, P.DATASETS_READ),
    admin_route("DELETE", D, delete_dataset, P.DATASETS_MANAGE),
    admin_route("POST", D + "/rows", add_rows, P.DATASETS_MANAGE, body=RowSources),
    admin_route("POST", D + "/rows/remove", remove_rows, P.DATASETS_MANAGE, body=DatasetRemove),
    admin_route(
        "GET",
        D + "/rows",
        list_rows,
        P.DATASETS_READ,
        query=("version", "limit", "cursor", "include_content"),
    ),
    admin_route("POST", D + "/import", import_rows, P.DATASETS_MANAGE),
    admin_route(
        "GET", D + "/export", export, P.DATASETS_READ, P.TRACES_READ_BODIES, query=_EXPORT_QUERY
    ),
    admin_route(
        "GET", D + "/exports/{export_id}", export_report, P.DATASETS_READ, P.TRACES_READ_BODIES
    ),
]
