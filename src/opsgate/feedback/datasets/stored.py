"""How dataset rows are read back: the row mappers and the filter for a version's rows
(shared by the dataset store's reads and changes and by the erasure holder)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_

from opsgate.feedback.datasets.model import DatasetInfo, StoredRow
from opsgate.store.tables.datasets import dataset_rows

BATCH = 500
"""Rows (or keys) per statement and per page."""

r = dataset_rows.c


def dataset_info(row: Any) -> DatasetInfo:
    return DatasetInfo(
        row.id,
        row.name,
        row.team_id,
        row.description,
        row.version,
        row.created_at,
        row.created_by,
        row.updated_at,
    )


def stored_row(row: Any) -> StoredRow:
    return StoredRow(
        row.id,
        row.dataset_id,
        row.added_in,
        row.seq,
        row.removed_in,
        row.source_trace_id,
        row.end_user,
        row.model,
        row.input_hash,
        bool(row.has_output),
        bool(row.has_reference),
        dict(row.scores or {}),
        dict(row.metadata or {}),
        bytes(row.body),
        row.created_at,
    )


def in_version(dataset_id: str, version: int) -> Any:
    """The rows of `dataset_id` that version `version` holds."""
    return and_(
        r.dataset_id == dataset_id,
        r.added_in <= version,
        or_(r.removed_in.is_(None), r.removed_in > version),
    )
