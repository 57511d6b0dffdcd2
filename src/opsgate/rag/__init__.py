"""Knowledge bases: ingestion, chunking, stores, hybrid retrieval, citations (docs/rag.md)."""

from opsgate.rag.ingest import IngestResult, Upload
from opsgate.rag.model import Filters, Hit, KnowledgeBase, Reader
from opsgate.rag.retrieve import Retrieval, SearchOptions
from opsgate.rag.service import KnowledgeService
from opsgate.rag.store import KnowledgeStore, StoreUnavailableError

__all__ = [
    "Filters",
    "Hit",
    "IngestResult",
    "KnowledgeBase",
    "KnowledgeService",
    "KnowledgeStore",
    "Reader",
    "Retrieval",
    "SearchOptions",
    "StoreUnavailableError",
    "Upload",
]
