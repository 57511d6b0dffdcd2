"""What both stores share: bases, documents and their ACL in plain SQLAlchemy Core.
Backends add full-text and vector search (with the shared clauses of `search_sql`)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.rag.model import ChunkRow, DocumentInfo, KnowledgeBase, Reader
from opsgate.rag.store.base import PutOutcome
from opsgate.rag.store.rows import base_of, chunk_values, doc_values, document_of
from opsgate.store.tables.rag import (
    rag_chunks,
    rag_document_acl,
    rag_documents,
    rag_knowledge_bases,
)

KB, DOC, ACL, CHUNK = rag_knowledge_bases, rag_documents, rag_document_acl, rag_chunks


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
                    .values(**doc_values(doc, len(chunks)), version=version, updated_at=now)
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
                        **doc_values(doc, len(chunks)),
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
        await conn.execute(insert(CHUNK), [chunk_values(base, doc_id, c) for c in chunks])
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
