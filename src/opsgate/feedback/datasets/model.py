"""The plain types of datasets: what the store hands out and takes, free of SQL."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    id: str
    name: str
    team_id: str | None
    description: str | None
    version: int
    created_at: float
    created_by: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    created_at: float
    created_by: str
    change: str
    detail: dict[str, Any]
    added: int
    removed: int


@dataclass(frozen=True, slots=True)
class NewRow:
    """A row ready to store: content sealed, facts in the clear."""

    id: str
    body: bytes
    input_hash: str
    has_output: bool
    has_reference: bool
    created_at: float
    source_trace_id: str | None = None
    end_user: str | None = None
    model: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredRow:
    id: str
    dataset_id: str
    added_in: int
    seq: int
    removed_in: int | None
    source_trace_id: str | None
    end_user: str | None
    model: str | None
    input_hash: str
    has_output: bool
    has_reference: bool
    scores: dict[str, Any]
    metadata: dict[str, Any]
    body: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class Change:
    """A change in progress: the version it writes and the lease it holds."""

    dataset_id: str
    version: int
    token: str


@dataclass(frozen=True, slots=True)
class ExportReport:
    id: str
    dataset_id: str
    version: int
    format: str
    redacted: bool
    rows: int
    duplicates: int
    skipped: int
    redactions: int
    tokens: int
    actor: str
    started_at: float
    completed_at: float | None


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"
