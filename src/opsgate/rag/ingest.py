"""Ingestion: files in, chunks with vectors stored.

Each file is hashed first (its bytes and its metadata): an unchanged file is a no-op before
any parsing or embedding. Changed and new files are parsed and chunked, their chunks embedded
in batches across files (one embedder call per `EMBED_BATCH` chunks), and each document stored
in one transaction. A file that cannot be parsed fails alone, with its reason; the rest go on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opsgate.cache.embed.base import Embedder
from opsgate.rag.chunking import chunk
from opsgate.rag.model import ChunkRow, DocumentInfo, KnowledgeBase
from opsgate.rag.parse import Parsed, ParseError, parse
from opsgate.rag.store.base import KnowledgeStore, vector_bytes

EMBED_BATCH = 256
"""Chunks embedded per embedder call (across files)."""
THREAD_BYTES = 64 * 1024
"""Files larger than this (and every PDF) are parsed in a worker thread."""
HEADING_SEP = " > "

Status = Literal["added", "replaced", "unchanged", "failed"]


@dataclass(frozen=True, slots=True)
class Upload:
    """One file to ingest and the metadata its chunks carry."""

    path: str
    data: bytes
    content_type: str | None = None
    format: str | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()
    acl: tuple[str, ...] = ()
    owner: str | None = None
    end_user: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def content_hash(self) -> str:
        digest = hashlib.sha256(self.data)
        about = [self.format, self.title, sorted(self.tags), sorted(self.acl), self.owner]
        digest.update(json.dumps([about, self.end_user, self.meta], sort_keys=True).encode())
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class IngestResult:
    path: str
    status: Status
    chunks: int = 0
    error: str | None = None


@dataclass
class _Prepared:
    upload: Upload
    digest: str
    parsed: Parsed
    rows: list[tuple[int, int, int, str, str]]  # (start, end, tokens, heading_text, text)


Progress = Callable[[IngestResult], None]


class Ingestor:
    def __init__(self, store: KnowledgeStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    async def ingest(
        self, base: KnowledgeBase, uploads: Sequence[Upload], progress: Progress | None = None
    ) -> list[IngestResult]:
        results: list[IngestResult] = []

        def done(result: IngestResult) -> None:
            results.append(result)
            if progress is not None:
                progress(result)

        pending: list[_Prepared] = []
        for upload in uploads:
            digest = upload.content_hash()
            if await self.store.document_hash(base, upload.path) == digest:
                done(IngestResult(upload.path, "unchanged"))
                continue
            try:
                pending.append(await self._prepare(base, upload, digest))
            except ParseError as exc:
                done(IngestResult(upload.path, "failed", error=str(exc)))
                continue
            if sum(len(p.rows) for p in pending) >= EMBED_BATCH:
                await self._store(base, pending, done)
                pending = []
        if pending:
            await self._store(base, pending, done)
        return results

    async def _prepare(self, base: KnowledgeBase, upload: Upload, digest: str) -> _Prepared:
        big = len(upload.data) > THREAD_BYTES or upload.data.startswith(b"%PDF-")
        if big:
            parsed = await asyncio.to_thread(parse, upload.data, upload.path, upload.format)
        else:
            parsed = parse(upload.data, upload.path, upload.format)
        title = upload.title or parsed.title
        spans = chunk(parsed.text, parsed.sections, base.chunking)
        rows = []
        for span in spans:
            names = [n for n in span.headings if n != title]
            heading = HEADING_SEP.join([title, *names] if title else names)
            rows.append(
                (span.start, span.end, span.tokens, heading, parsed.text[span.start : span.end])
            )
        return _Prepared(upload, digest, parsed, rows)

    async def _store(
        self, base: KnowledgeBase, batch: list[_Prepared], done: Callable[[IngestResult], None]
    ) -> None:
        texts = [f"{h}\n{t}" if h else t for p in batch for (_, _, _, h, t) in p.rows]
        vectors: list[bytes] = []
        for i in range(0, len(texts), EMBED_BATCH):
            vectors.extend(vector_bytes(await self.embedder.embed(texts[i : i + EMBED_BATCH])))
        at = 0
        for prepared in batch:
            rows = [
                ChunkRow(seq, start, end, tokens, heading, text, vectors[at + seq])
                for seq, (start, end, tokens, heading, text) in enumerate(prepared.rows)
            ]
            at += len(rows)
            outcome = await self.store.put_document(base, _document(base, prepared), rows)
            done(IngestResult(prepared.upload.path, outcome, len(rows)))


def _document(base: KnowledgeBase, prepared: _Prepared) -> DocumentInfo:
    upload, parsed = prepared.upload, prepared.parsed
    now = time.time()
    return DocumentInfo(
        id="",
        kb_id=base.id,
        path=upload.path,
        title=upload.title or parsed.title,
        format=parsed.format,
        content_hash=prepared.digest,
        version=1,
        chars=len(parsed.text),
        chunk_count=len(prepared.rows),
        tags=upload.tags,
        meta=upload.meta,
        owner=upload.owner,
        acl=upload.acl,
        end_user=upload.end_user,
        created_at=now,
        updated_at=now,
    )
