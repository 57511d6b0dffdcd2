"""The plain types of knowledge bases: what is stored, who reads it, and what a search finds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from opsgate.access.permissions import is_global
from opsgate.access.principal import Principal

Retriever = Literal["bm25", "vector"]


@dataclass(frozen=True, slots=True)
class ChunkSettings:
    """How a knowledge base cuts documents: at most `max_tokens` per chunk, `overlap` tokens
    repeated from the end of one chunk at the start of the next."""

    max_tokens: int = 256
    overlap: int = 32

    def as_json(self) -> dict[str, int]:
        return {"max_tokens": self.max_tokens, "overlap": self.overlap}


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    id: str
    team_id: str
    """'' for a base of no team: every caller sees it."""
    name: str
    embedder: str
    """The embedder's name: vectors of another embedder never share this base."""
    dim: int
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    description: str | None = None
    generation: int = 0
    """Bumped by every change of its documents (replicas and ANN indexes compare it)."""
    created_at: float = 0.0
    updated_at: float = 0.0
    created_by: str | None = None
    documents: int = 0
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """One stored document, without its chunks."""

    id: str
    kb_id: str
    path: str
    title: str | None
    format: str
    content_hash: str
    version: int
    chars: int
    chunk_count: int
    tags: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None
    acl: tuple[str, ...] = ()
    end_user: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A chunk ready to store: its span of the document's text, its text and its vector."""

    seq: int
    start: int
    end: int
    tokens: int
    heading_text: str
    text: str
    vector: bytes


@dataclass(frozen=True, slots=True)
class Reader:
    """Who a search runs for, as the store's ACL clause reads it.

    `everything` (admins) sees every document; otherwise a knowledge base must be the reader's
    team's (or of no team), and a document must be open or list one of `entries`.
    """

    team_id: str | None
    entries: tuple[str, ...]
    everything: bool = False

    @classmethod
    def of(cls, who: Principal) -> Reader:
        entries = [f"key:{who.key_id}", f"role:{who.role.value}"]
        if who.user_id:
            entries.append(f"user:{who.user_id}")
        if who.team_id:
            entries.append(f"team:{who.team_id}")
        return cls(who.team_id, tuple(entries), everything=is_global(who))

    def sees_base(self, team_id: str) -> bool:
        return self.everything or team_id == "" or team_id == self.team_id


@dataclass(frozen=True, slots=True)
class Filters:
    """Metadata filters applied inside the store query (ANDed)."""

    paths: tuple[str, ...] = ()
    """Path prefixes; a document matches one of them."""
    tags: tuple[str, ...] = ()
    """Every tag listed must be on the document."""
    document_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hit:
    """One chunk a retriever found, with what a citation needs."""

    chunk_id: int
    document_id: str
    path: str
    title: str | None
    seq: int
    start: int
    end: int
    text: str
    heading_text: str
    score: float
    """The retriever's own score (BM25, cosine), or the fused score after fusion."""
    retrievers: tuple[Retriever, ...] = ()
    ranks: dict[str, int] = field(default_factory=dict)
    """1-based rank per retriever that found it."""
    vector: bytes | None = None
    version: int = 0
