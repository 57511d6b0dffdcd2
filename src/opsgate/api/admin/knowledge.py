"""Admin API of knowledge bases (`/admin/v1/knowledge-bases`): create, list, show, delete;
ingest documents (JSON or multipart, under `rag.max_upload_bytes`: 413 above); list and delete
documents; search. Thin handlers over `KnowledgeService` (rag/service.py), which scopes every
look-up to the caller (a base of another team is a 404) and applies the document ACL inside
each search."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from opsgate.access.permissions import Permission
from opsgate.api.responses import JSONResponse
from opsgate.errors import BadRequestError, NotFoundError, PayloadTooLargeError
from opsgate.rag.ingest import IngestResult
from opsgate.rag.model import DocumentInfo, Hit, KnowledgeBase
from opsgate.rag.request import read_filters
from opsgate.rag.service import KnowledgeService
from opsgate.rag.uploads import IngestBody, uploads_from_json, uploads_from_multipart
from opsgate.web.admin import AdminCall, admin_route
from opsgate.web.body import validated

P = Permission
BASE = "/admin/v1/knowledge-bases"
ONE = BASE + "/{name}"


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    team_id: str | None = None
    description: str | None = Field(default=None, max_length=2000)
    chunk_tokens: int | None = None
    chunk_overlap: int | None = None


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str
    top_k: int | None = None
    mode: str = Field(default="hybrid", pattern="^(hybrid|bm25|vector)$")
    filters: dict[str, Any] | None = None
    mmr: bool | None = None


def _service(call: AdminCall) -> KnowledgeService:
    service: KnowledgeService = call.gateway.knowledge
    return service


def base_json(base: KnowledgeBase) -> dict[str, Any]:
    return {
        "object": "knowledge_base",
        "id": base.id,
        "name": base.name,
        "team_id": base.team_id or None,
        "description": base.description,
        "embedder": base.embedder,
        "dim": base.dim,
        "chunk_tokens": base.chunking.max_tokens,
        "chunk_overlap": base.chunking.overlap,
        "documents": base.documents,
        "chunks": base.chunks,
        "created_at": base.created_at,
        "updated_at": base.updated_at,
        "created_by": base.created_by,
    }


def document_json(doc: DocumentInfo) -> dict[str, Any]:
    return {
        "object": "knowledge_base.document",
        "id": doc.id,
        "path": doc.path,
        "title": doc.title,
        "format": doc.format,
        "version": doc.version,
        "chars": doc.chars,
        "chunks": doc.chunk_count,
        "tags": list(doc.tags),
        "acl": list(doc.acl),
        "owner": doc.owner,
        "end_user": doc.end_user,
        "metadata": doc.meta,
        "content_hash": doc.content_hash,
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
    }


def hit_json(hit: Hit, rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "score": round(hit.score, 6),
        "retrievers": list(hit.retrievers),
        "ranks": hit.ranks,
        "document_id": hit.document_id,
        "path": hit.path,
        "title": hit.title,
        "chunk_id": hit.chunk_id,
        "chunk": hit.seq,
        "headings": hit.heading_text,
        "start": hit.start,
        "end": hit.end,
        "text": hit.text,
    }


def result_json(result: IngestResult) -> dict[str, Any]:
    return {
        "path": result.path,
        "status": result.status,
        "chunks": result.chunks,
        "error": result.error,
    }


async def list_bases(call: AdminCall) -> Response:
    """The knowledge bases you can see, with document and chunk counts"""
    bases = await _service(call).bases(call.who)
    return JSONResponse({"object": "list", "data": [base_json(b) for b in bases]})


async def create_base(call: AdminCall) -> Response:
    """Create a knowledge base of your team (admins: any team, or none = shared)"""
    body: CreateBody = call.body
    base = await _service(call).create(
        call.who,
        body.name,
        team_id=body.team_id,
        description=body.description,
        chunk_tokens=body.chunk_tokens,
        chunk_overlap=body.chunk_overlap,
    )
    return JSONResponse(base_json(base), status_code=201)


async def show_base(call: AdminCall) -> Response:
    """One knowledge base"""
    base = await _service(call).find(call.who, call.path("name"), call.query.get("team_id"))
    return JSONResponse(base_json(base))


async def delete_base(call: AdminCall) -> Response:
    """Delete a knowledge base with its documents and chunks"""
    await _service(call).delete(call.who, call.path("name"), call.query.get("team_id"))
    return JSONResponse({"object": "knowledge_base.deleted", "name": call.path("name")})


async def ingest(call: AdminCall) -> Response:
    """Ingest documents (JSON or multipart); unchanged files are no-ops, changed ones are
    replaced, unreadable ones fail alone"""
    service = _service(call)
    limit = service.config.max_upload_bytes
    data = await _read_capped(call, limit)
    kind = call.request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        uploads = uploads_from_multipart(kind, data)
    else:
        try:
            raw = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            raise BadRequestError("the body is not valid JSON", code="invalid_json") from None
        if not isinstance(raw, dict):
            raise BadRequestError("the body must be a JSON object", code="invalid_json")
        uploads = uploads_from_json(validated(IngestBody, raw))
    results = await service.ingest(
        call.who, call.path("name"), uploads, team_id=call.query.get("team_id")
    )
    counts = {
        s: sum(1 for r in results if r.status == s)
        for s in ("added", "replaced", "unchanged", "failed")
    }
    return JSONResponse(
        {"object": "knowledge_base.ingest", **counts, "results": [result_json(r) for r in results]}
    )


async def _read_capped(call: AdminCall, limit: int) -> bytes:
    declared = call.request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for piece in call.request.stream():
        body += piece
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the upload is larger than the {limit} bytes allowed (rag.max_upload_bytes)",
        code="upload_too_large",
    )


async def list_documents(call: AdminCall) -> Response:
    """The documents of a knowledge base you may read"""
    limit = _int(call, "limit", 100, 1000)
    offset = _int(call, "offset", 0, 10**9)
    docs = await _service(call).documents(
        call.who, call.path("name"), team_id=call.query.get("team_id"), limit=limit, offset=offset
    )
    return JSONResponse({"object": "list", "data": [document_json(d) for d in docs]})


async def delete_document(call: AdminCall) -> Response:
    """Delete one document (by `path`) and its chunks"""
    path = call.query.get("path")
    if not path:
        raise BadRequestError("path is required", code="missing_path", param="path")
    gone = await _service(call).delete_document(
        call.who, call.path("name"), path, call.query.get("team_id")
    )
    if not gone:
        raise NotFoundError(f"no document {path!r}", code="document_not_found", param="path")
    return JSONResponse({"object": "knowledge_base.document.deleted", "path": path})


async def search(call: AdminCall) -> Response:
    """Search a knowledge base (hybrid by default) as the ACL lets you see it"""
    body: SearchBody = call.body
    service = _service(call)
    options = service.options(
        body.top_k,
        mode=body.mode,  # type: ignore[arg-type]
        filters=read_filters(body.filters, "filters"),
        mmr=body.mmr,
    )
    base, found = await service.search(
        call.who, call.path("name"), body.query, options, call.query.get("team_id")
    )
    return JSONResponse(
        {
            "object": "knowledge_base.search",
            "knowledge_base": base.name,
            "query": body.query,
            "mode": body.mode,
            "timings_ms": {k: round(v, 3) for k, v in found.timings_ms.items()},
            "data": [hit_json(h, i) for i, h in enumerate(found.hits, start=1)],
        }
    )


def _int(call: AdminCall, name: str, default: int, most: int) -> int:
    raw = call.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > most:
        raise BadRequestError(f"{name} must be an integer 0..{most}", param=name)
    return int(raw)


R, M = P.KNOWLEDGE_READ, P.KNOWLEDGE_MANAGE
routes = [
    admin_route("GET", BASE, list_bases, R),
    admin_route("POST", BASE, create_base, M, body=CreateBody),
    admin_route("GET", ONE, show_base, R, query=("team_id",)),
    admin_route("DELETE", ONE, delete_base, M, query=("team_id",)),
    admin_route("POST", ONE + "/documents", ingest, M, query=("team_id",)),
    admin_route("GET", ONE + "/documents", list_documents, R, query=("team_id", "limit", "offset")),
    admin_route("DELETE", ONE + "/documents", delete_document, M, query=("team_id", "path")),
    admin_route("POST", ONE + "/search", search, R, query=("team_id",), body=SearchBody),
]
