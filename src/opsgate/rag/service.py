"""Knowledge bases as the API, the CLI (through the API), the dashboard and the retrieval stage
use them: named, team-scoped, searched as a principal sees them."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Sequence

from opsgate.access.errors import ConflictError
from opsgate.access.principal import Principal
from opsgate.cache.embed import EmbedCall, Embedder, build_embedder
from opsgate.config.guard import GuardConfig
from opsgate.config.rag import RagConfig
from opsgate.errors import BadRequestError, NotFoundError, PermissionDeniedError
from opsgate.guard.inspection import Scanner
from opsgate.guard.service import load_injection
from opsgate.rag.ingest import Ingestor, IngestResult, Progress, Upload
from opsgate.rag.model import ChunkSettings, DocumentInfo, Filters, KnowledgeBase, Reader
from opsgate.rag.queries import QueryVectors
from opsgate.rag.retrieve import Mode, Retrieval, SearchOptions, retrieve
from opsgate.rag.store.base import KnowledgeStore, StoreUnavailableError

log = logging.getLogger("opsgate.rag")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_QUERY_CHARS = 4000


class KnowledgeService:
    def __init__(
        self, store: KnowledgeStore, config: RagConfig, embed_call: EmbedCall | None = None
    ) -> None:
        self.store = store
        self.config = config
        self._embed_call = embed_call
        self._embedder: Embedder | None = None
        self._embedder_lock = asyncio.Lock()
        self.unavailable: str | None = None
        """Why knowledge bases are off on this gateway (None when they work)."""
        self._scanner: tuple[GuardConfig, Scanner] | None = None
        self.queries = QueryVectors()
        """Recent query vectors (by embedder name and text): a repeated question skips the
        embedder."""

    async def start(self) -> None:
        try:
            await self.store.start()
            self.unavailable = None
        except StoreUnavailableError as exc:
            self.unavailable = exc.message
            log.warning("knowledge bases unavailable: %s", exc.message)

    async def aclose(self) -> None:
        await self.store.aclose()
        if self._embedder is not None:
            await self._embedder.aclose()

    def reload(self, config: RagConfig) -> None:
        if config.embedder != self.config.embedder:
            self._embedder = None  # built again on next use
            self.queries.clear()
        self.config = config

    async def embedder(self) -> Embedder:
        if self._embedder is None:
            async with self._embedder_lock:
                if self._embedder is None:
                    config, call = self.config.embedder, self._embed_call
                    self._embedder = await asyncio.to_thread(build_embedder, config, call)
        return self._embedder

    def scanner(self, guard: GuardConfig) -> Scanner:
        """The injection detector for retrieved text, as `guard.injection` configures it,
        loaded even when no guard policy scans requests (documents are always untrusted)."""
        if self._scanner is None or self._scanner[0].injection != guard.injection:
            self._scanner = (guard, load_injection(guard))
        return self._scanner[1]

    def _ready(self) -> None:
        if self.unavailable is not None:
            raise StoreUnavailableError(f"knowledge bases are unavailable: {self.unavailable}")

    # -- bases ------------------------------------------------------------------------------

    async def create(
        self,
        who: Principal,
        name: str,
        *,
        team_id: str | None = None,
        description: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
    ) -> KnowledgeBase:
        self._ready()
        if not NAME.match(name):
            raise BadRequestError(
                "name must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter "
                "or digit)",
                code="invalid_name",
                param="name",
            )
        reader = Reader.of(who)
        team = _team_for(who, reader, team_id)
        tokens = chunk_tokens or self.config.chunk_tokens
        overlap = self.config.chunk_overlap if chunk_overlap is None else chunk_overlap
        if not 16 <= tokens <= 8192 or not 0 <= overlap < tokens:
            raise BadRequestError(
                "chunk_tokens must be 16..8192 and chunk_overlap below it",
                code="invalid_chunking",
                param="chunk_tokens",
            )
        embedder = await self.embedder()
        now = time.time()
        base = KnowledgeBase(
            id="kb_" + os.urandom(8).hex(),
            team_id=team,
            name=name,
            embedder=embedder.name,
            dim=embedder.dim,
            chunking=ChunkSettings(tokens, overlap),
            description=description,
            created_at=now,
            updated_at=now,
            created_by=who.key_id,
        )
        return await self.store.create_base(base)

    async def find(self, who: Principal, name: str, team_id: str | None = None) -> KnowledgeBase:
        """The base `who` means by `name`: their team's, else one of no team; 404 when they
        see none (a base of another team is a 404, exactly like an unknown name)."""
        self._ready()
        reader = Reader.of(who)
        found = await self.store.bases(reader, name=name, team_id=team_id)
        if not found:
            raise NotFoundError(
                f"knowledge base {name!r} not found", code="knowledge_base_not_found"
            )
        if len(found) == 1:
            return found[0]
        for team in (reader.team_id, ""):
            for base in found:
                if base.team_id == team:
                    return base
        raise ConflictError(
            f"several teams have a knowledge base {name!r}; say which with team_id",
            code="ambiguous_knowledge_base",
            param="team_id",
        )

    async def bases(self, who: Principal) -> list[KnowledgeBase]:
        self._ready()
        return await self.store.bases(Reader.of(who))

    async def delete(self, who: Principal, name: str, team_id: str | None = None) -> None:
        base = await self.find(who, name, team_id)
        _may_manage(who, base)
        await self.store.delete_base(base)

    # -- documents --------------------------------------------------------------------------

    async def ingest(
        self,
        who: Principal,
        name: str,
        uploads: Sequence[Upload],
        *,
        team_id: str | None = None,
        progress: Progress | None = None,
    ) -> list[IngestResult]:
        base = await self.find(who, name, team_id)
        _may_manage(who, base)
        embedder = await self._embedder_for(base)
        results = await Ingestor(self.store, embedder).ingest(base, uploads, progress)
        flush = getattr(self.store, "flush", None)
        if flush is not None:
            await flush()
        return results

    async def documents(
        self,
        who: Principal,
        name: str,
        *,
        team_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[DocumentInfo]:
        base = await self.find(who, name, team_id)
        return await self.store.documents(base, Reader.of(who), limit=limit, offset=offset)

    async def delete_document(
        self, who: Principal, name: str, path: str, team_id: str | None = None
    ) -> bool:
        base = await self.find(who, name, team_id)
        _may_manage(who, base)
        return await self.store.delete_document(base, path)

    # -- search -----------------------------------------------------------------------------

    def options(
        self,
        top_k: int | None = None,
        *,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        mmr: bool | None = None,
    ) -> SearchOptions:
        config = self.config
        k = config.top_k if top_k is None else top_k
        if not 1 <= k <= config.max_top_k:
            raise BadRequestError(
                f"top_k must be 1..{config.max_top_k}", code="invalid_top_k", param="top_k"
            )
        return SearchOptions(
            top_k=k,
            mode=mode,
            filters=filters or Filters(),
            fusion=config.fusion,
            mmr=config.mmr if mmr is None else mmr,
            mmr_lambda=config.mmr_lambda,
        )

    async def search(
        self,
        who: Principal,
        name: str,
        query: str,
        options: SearchOptions,
        team_id: str | None = None,
    ) -> tuple[KnowledgeBase, Retrieval]:
        if not query.strip():
            raise BadRequestError("query must not be empty", code="empty_query", param="query")
        if len(query) > MAX_QUERY_CHARS:
            raise BadRequestError(
                f"query is longer than {MAX_QUERY_CHARS} characters",
                code="query_too_long",
                param="query",
            )
        base = await self.find(who, name, team_id)
        embedder = self.queries.around(await self._embedder_for(base))
        found = await retrieve(self.store, embedder, base, query, Reader.of(who), options)
        return base, found

    async def _embedder_for(self, base: KnowledgeBase) -> Embedder:
        embedder = await self.embedder()
        if embedder.name != base.embedder:
            raise ConflictError(
                f"knowledge base {base.name!r} was embedded with {base.embedder!r}, but this "
                f"gateway's rag.embedder is {embedder.name!r}: configure that embedder, or "
                "create the base again and re-ingest",
                code="embedder_mismatch",
            )
        return embedder


def _team_for(who: Principal, reader: Reader, asked: str | None) -> str:
    if reader.everything:
        return asked if asked is not None else (who.team_id or "")
    if who.team_id is None:
        raise PermissionDeniedError(
            "a key of no team cannot create knowledge bases (a base of no team is shared "
            "with every caller: only admins make those)",
            code="no_team",
        )
    if asked is not None and asked != who.team_id:
        raise PermissionDeniedError(
            f"team_id {asked!r} is outside your scope (team_id {who.team_id!r})",
            code="outside_scope",
            param="team_id",
        )
    return who.team_id


def _may_manage(who: Principal, base: KnowledgeBase) -> None:
    reader = Reader.of(who)
    if reader.everything or (base.team_id and base.team_id == who.team_id):
        return
    raise PermissionDeniedError(
        f"knowledge base {base.name!r} is shared by every team: only admins change it",
        code="shared_knowledge_base",
    )
