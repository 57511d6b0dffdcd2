"""Knowledge-base rows both ways: a base or document read back from its row, and the column
values a document and its chunks are written with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opsgate.rag.model import ChunkRow, ChunkSettings, DocumentInfo, KnowledgeBase


def base_of(row: Mapping[Any, Any]) -> KnowledgeBase:
    settings = row["settings"] or {}
    return KnowledgeBase(
        id=row["id"],
        team_id=row["team_id"],
        name=row["name"],
        embedder=row["embedder"],
        dim=row["dim"],
        chunking=ChunkSettings(
            int(settings.get("max_tokens", 256)), int(settings.get("overlap", 32))
        ),
        description=row["description"],
        generation=row["generation"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        created_by=row["created_by"],
        documents=int(row.get("documents") or 0),
        chunks=int(row.get("chunks") or 0),
    )


def document_of(row: Mapping[Any, Any], acl: Sequence[str]) -> DocumentInfo:
    return DocumentInfo(
        id=row["id"],
        kb_id=row["kb_id"],
        path=row["path"],
        title=row["title"],
        format=row["format"],
        content_hash=row["content_hash"],
        version=row["version"],
        chars=row["chars"],
        chunk_count=row["chunk_count"],
        tags=tuple(row["tags"] or ()),
        meta=dict(row["meta"] or {}),
        owner=row["owner"],
        acl=tuple(acl),
        end_user=row["end_user"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def doc_values(doc: DocumentInfo, chunk_count: int) -> dict[str, Any]:
    return {
        "title": doc.title,
        "format": doc.format,
        "content_hash": doc.content_hash,
        "chars": doc.chars,
        "chunk_count": chunk_count,
        "tags": list(doc.tags),
        "meta": dict(doc.meta),
        "owner": doc.owner,
        "acl_open": not doc.acl,
        "end_user": doc.end_user,
    }


def chunk_values(base: KnowledgeBase, doc_id: str, chunk: ChunkRow) -> dict[str, Any]:
    return {
        "kb_id": base.id,
        "document_id": doc_id,
        "seq": chunk.seq,
        "char_start": chunk.start,
        "char_end": chunk.end,
        "tokens": chunk.tokens,
        "heading_text": chunk.heading_text,
        "text": chunk.text,
        "vector": chunk.vector,
    }
