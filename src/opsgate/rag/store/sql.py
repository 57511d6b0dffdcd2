"""What both stores share: bases, documents and their ACL in plain SQLAlchemy Core, and the
ACL clause every chunk-returning statement embeds. Backends add full-text and vector search."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.rag.model import (
    ChunkRow,
    ChunkSettings,
    DocumentInfo,
    Filters,
    Hit,
    KnowledgeBase,
    Reader,
    Retriever,
)
from opsgate.rag.store.base import PutOutcome
from opsgate.store.tables.rag import (
    rag_chunks,
    rag_document_acl,
    rag_documents,
    rag_knowledge_bases,
)

KB, DOC, ACL, CHUNK = rag_knowledge_bases, rag_documents, rag_document_acl, rag_chunks

HIT_COLUMNS = (
    "c.id AS chunk_id, c.document_id, d.path, d.title, c.seq, c.char_start, c.char_end, "
    "c.text, c.heading_text, d.version, c.vector"
)
"""The columns every search selects (chunks `c`, documents `d`, bases `kb`)."""
HIT_FROM = (
    "rag_chunks c JOIN rag_documents d ON d.id = c.document_id "
    "JOIN rag_knowledge_bases kb ON kb.id = c.kb_id"
)


def access_sql(reader: Reader, params: dict[str, Any]) -> str:
    """The reader's ACL as SQL over `kb` and `d` (binds added to `params`): the base is of the
    reader's team or of no team, and the document is open or lists one of the reader's
    entries. Admins see everything."""
    if reader.everything:
        return "1 = 1"
    params["acl_team"] = reader.team_id or ""
    params["acl_open"] = True
    names = []
    for i, entry in enumerate(reader.entries):
        params[f"acl_e{i}"] = entry
        names.append(f":acl_e{i}")
    listed = (
        "EXISTS (SELECT 1 FROM rag_document_acl a WHERE a.document_id = d.id "
        f"AND a.entry IN ({', '.join(names)}))"
    )
    team = "(kb.team_id = '' OR kb.team_id = :acl_team)"
    return f"{team} AND (d.acl_open = :acl_open OR {listed})"


def filter_sql(filters: Filters, params: dict[str, Any], tag_clause: str) -> str:
    """Metadata filters as SQL over `d`; `tag_clause` has `{name}` for one tag's bind."""
    parts: list[str] = []
    if filters.paths:
        ors = []
        for i, prefix in enumerate(filters.paths):
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params[f"f_path{i}"] = escaped + "%"
            ors.append(f"d.path LIKE :f_path{i} ESCAPE '\\'")
        parts.append("(" + " OR ".join(ors) + ")")
    for i, tag in enumerate(filters.tags):
        params[f"f_tag{i}"] = tag
        parts.append(tag_clause.format(name=f"f_tag{i}"))
    if filters.document_ids:
        names = []
        for i, doc_id in enumerate(filters.document_ids):
            params[f"f_doc{i}"] = doc_id
            names.append(f":f_doc{i}")
        parts.append(f"d.id IN ({', '.join(names)})")
    return " AND ".join(parts) if parts else "1 = 1"


def hit_of(row: Mapping[Any, Any], score: float, retriever: Retriever, rank: int) -> Hit:
    return Hit(
        chunk_id=int(row["chunk_id"]),
        document_id=row["document_id"],
        path=row["path"],
        title=row["title"],
        seq=row["seq"],
        start=row["char_start"],
        end=row["char_end"],
        text=row["text"],
        heading_text=row["heading_text"],
        score=score,
        retrievers=(retriever,),
        ranks={retriever: rank},
        vector=row.get("vector"),
        version=row["version"],
    )


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


class SqlStore:
    """Bases and documents over one engine; subclasses search."""

    kind = "sql"

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- hooks for the backends' vector indexes ------------------------------------------

    async def _replaced(
        self,
        base: KnowledgeBase,
        gone: Sequence[int],
        added: Sequence[int],
        rows: Sequence[ChunkRow],
    ) -> None:
        """After a committed document change: chunk ids that went and that came."""

    async def _base_dropped(self, base: KnowledgeBase) -> None:
        """After a base was deleted."""

    async def _base_created(self, conn: AsyncConnection, base: KnowledgeBase) -> None:
        """Inside the transaction that creates a base."""

    # -- bases ------------------------------------------------------------------------------

    async def create_base(self, base: KnowledgeBase) -> KnowledgeBase:
        values = {
            "id": base.id,
            "team_id": base.team_id,
            "name": base.name,
            "description": base.description,
            "embedder": base.embedder,
            "dim": base.dim,
            "settings": base.chunking.as_json(),
            "generation": 0,
            "created_at": base.created_at,
            "updated_at": base.created_at,
            "created_by": base.created_by,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(KB).values(**values))
                await self._base_created(conn, base)
        except IntegrityError:
            where = f"team {base.team_id!r}" if base.team_id else "no team"
            raise ConflictError(
                f"knowledge base {base.name!r} already exists ({where})",
                code="knowledge_base_exists",
                param="name",
            ) from None
        return base

    async def bases(
        self, reader: Reader, *, name: str | None = None, team_id: str | None = None
    ) -> list[KnowledgeBase]:
        docs = select(func.count()).where(DOC.c.kb_id == KB.c.id).scalar_subquery()
        chunks = select(func.count()).where(CHUNK.c.kb_id == KB.c.id).scalar_subquery()
        stmt = select(KB, docs.label("documents"), chunks.label("chunks"))
        if not reader.everything:
            stmt = stmt.where(or_(KB.c.team_id == "", KB.c.team_id == (reader.team_id or "")))
        if name is not None:
            stmt = stmt.where(KB.c.name == name)
        if team_id is not None:
            stmt = stmt.where(KB.c.team_id == team_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(KB.c.team_id, KB.c.name))).mappings().all()
        return [base_of(row) for row in rows]

    async def delete_base(self, base: KnowledgeBase) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(CHUNK).where(CHUNK.c.kb_id == base.id))
            await conn.execute(delete(KB).where(KB.c.id == base.id))
        await self._base_dropped(base)

    # -- documents --------------------------------------------------------------------------

    async def document_hash(self, base: KnowledgeBase, path: str) -> str | None:
        stmt = select(DOC.c.content_hash).where(DOC.c.kb_id == base.id, DOC.c.path == path)
        async with self.engine.connect() as conn:
            found: str | None = (await conn.execute(stmt)).scalar()
        return found

    async def put_document(
        self, base: KnowledgeBase, doc: DocumentInfo, chunks: Sequence[ChunkRow]
    ) -> PutOutcome:
        for attempt in range(3):  # two first ingests of one path race on the unique key
            try:
                return await self._put(base, doc, chunks)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _put(
        self, base: KnowledgeBase, doc: DocumentInfo, chunks: Sequence[ChunkRow]
    ) -> PutOutcome:
        now = time.time()
        async with self.engine.begin() as conn:
            found = await self._lock_document(conn, base, doc.path)
            if found is not None and found["content_hash"] == doc.content_hash:
                return "unchanged"
            gone: list[int] = []
            if found is not None:
                doc_id, version = found["id"], int(found["version"]) + 1
                picked = select(CHUNK.c.id).where(CHUNK.c.document_id == doc_id)
                gone = [int(r[0]) for r in await conn.execute(picked)]
                await conn.execute(delete(CHUNK).where(CHUNK.c.document_id == doc_id))
                await conn.execute(delete(ACL).where(ACL.c.document_id == doc_id))
                await conn.execute(
                    update(DOC)
                    .where(DOC.c.id == doc_id)
                    .values(**_doc_values(doc, len(chunks)), version=version, updated_at=now)
                )
            else:
                doc_id = doc.id or "doc_" + os.urandom(12).hex()
                await conn.execute(
                    insert(DOC).values(
                        id=doc_id,
                        kb_id=base.id,
                        path=doc.path,
                        version=1,
                        created_at=now,
                        updated_at=now,
                        **_doc_values(doc, len(chunks)),
                    )
                )
            if doc.acl:
                await conn.execute(
                    insert(ACL), [{"document_id": doc_id, "entry": e} for e in set(doc.acl)]
                )
            added = await self._insert_chunks(conn, base, doc_id, chunks)
            await conn.execute(
                update(KB)
                .where(KB.c.id == base.id)
                .values(generation=KB.c.generation + 1, updated_at=now)
            )
        await self._replaced(base, gone, added, chunks)
        return "replaced" if found is not None else "added"

    async def _lock_document(
        self, conn: AsyncConnection, base: KnowledgeBase, path: str
    ) -> Mapping[Any, Any] | None:
        stmt = select(DOC.c.id, DOC.c.content_hash, DOC.c.version).where(
            DOC.c.kb_id == base.id, DOC.c.path == path
        )
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return (await conn.execute(stmt)).mappings().first()

    async def _insert_chunks(
        self, conn: AsyncConnection, base: KnowledgeBase, doc_id: str, chunks: Sequence[ChunkRow]
    ) -> list[int]:
        if not chunks:
            return []
        await conn.execute(insert(CHUNK), [_chunk_values(base, doc_id, c) for c in chunks])
        picked = select(CHUNK.c.id).where(CHUNK.c.document_id == doc_id).order_by(CHUNK.c.seq)
        return [int(r[0]) for r in await conn.execute(picked)]

    async def delete_document(self, base: KnowledgeBase, path: str) -> bool:
        async with self.engine.begin() as conn:
            found = await self._lock_document(conn, base, path)
            if found is None:
                return False
            picked = select(CHUNK.c.id).where(CHUNK.c.document_id == found["id"])
            gone = [int(r[0]) for r in await conn.execute(picked)]
            await conn.execute(delete(CHUNK).where(CHUNK.c.document_id == found["id"]))
            await conn.execute(delete(DOC).where(DOC.c.id == found["id"]))
            await conn.execute(
                update(KB).where(KB.c.id == base.id).values(generation=KB.c.generation + 1)
            )
        await self._replaced(base, gone, [], [])
        return True

    async def documents(
        self, base: KnowledgeBase, reader: Reader, *, limit: int, offset: int = 0
    ) -> list[DocumentInfo]:
        stmt = select(DOC).where(DOC.c.kb_id == base.id)
        if not reader.everything:
            listed = (
                select(ACL.c.document_id)
                .where(ACL.c.document_id == DOC.c.id, ACL.c.entry.in_(reader.entries))
                .exists()
            )
            stmt = stmt.where(or_(DOC.c.acl_open.is_(True), listed))
        stmt = stmt.order_by(DOC.c.path).limit(limit).offset(offset)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
            ids = [r["id"] for r in rows]
            acl: dict[str, list[str]] = {}
            if ids:
                entries = select(ACL).where(ACL.c.document_id.in_(ids))
                for entry in (await conn.execute(entries)).mappings():
                    acl.setdefault(entry["document_id"], []).append(entry["entry"])
        return [document_of(row, sorted(acl.get(row["id"], ()))) for row in rows]

    # -- end users --------------------------------------------------------------------------

    async def export_end_user(self, end_user: str) -> list[dict[str, Any]]:
        stmt = (
            select(DOC.c.id, DOC.c.path, DOC.c.title, DOC.c.created_at, KB.c.name)
            .join(KB, KB.c.id == DOC.c.kb_id)
            .where(DOC.c.end_user == end_user)
            .order_by(DOC.c.created_at)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            {
                "document_id": r["id"],
                "knowledge_base": r["name"],
                "path": r["path"],
                "title": r["title"],
                "created_at": r["created_at"],
            }
            for r in rows
        ]

    async def erase_end_user(self, end_user: str) -> dict[str, int]:
        bases: dict[str, list[int]] = {}
        async with self.engine.begin() as conn:
            docs = (
                await conn.execute(select(DOC.c.id, DOC.c.kb_id).where(DOC.c.end_user == end_user))
            ).all()
            if not docs:
                return {"rag_documents": 0, "rag_chunks": 0}
            ids = [d[0] for d in docs]
            picked = select(CHUNK.c.id, CHUNK.c.kb_id).where(CHUNK.c.document_id.in_(ids))
            for chunk_id, kb_id in await conn.execute(picked):
                bases.setdefault(kb_id, []).append(int(chunk_id))
            await conn.execute(delete(CHUNK).where(CHUNK.c.document_id.in_(ids)))
            await conn.execute(delete(DOC).where(DOC.c.id.in_(ids)))
            kb_ids = {d[1] for d in docs}
            await conn.execute(
                update(KB).where(KB.c.id.in_(kb_ids)).values(generation=KB.c.generation + 1)
            )
            rows = (await conn.execute(select(KB).where(KB.c.id.in_(kb_ids)))).mappings().all()
        for row in rows:
            await self._replaced(base_of(row), bases.get(row["id"], []), [], [])
        return {"rag_documents": len(docs), "rag_chunks": sum(map(len, bases.values()))}


def _doc_values(doc: DocumentInfo, chunk_count: int) -> dict[str, Any]:
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


def _chunk_values(base: KnowledgeBase, doc_id: str, chunk: ChunkRow) -> dict[str, Any]:
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
