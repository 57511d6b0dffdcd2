"""Datasets in SQL (SQLite and PostgreSQL): datasets, their versions and rows, export reports.

`DatasetStore` reads here and writes through `DatasetChanges` (datasets/changes.py: the
versioned, leased change); rows are mapped back in datasets/stored.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.feedback.datasets.changes import DatasetChanges
from opsgate.feedback.datasets.model import DatasetInfo, ExportReport, StoredRow, VersionInfo
from opsgate.feedback.datasets.stored import BATCH, dataset_info, in_version, r, stored_row
from opsgate.store.tables.datasets import (
    dataset_exports,
    dataset_rows,
    dataset_versions,
    datasets,
)

d = datasets.c


class DatasetStore(DatasetChanges):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # --- datasets ------------------------------------------------------------------------

    async def get(self, dataset_id: str) -> DatasetInfo | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(datasets).where(d.id == dataset_id))).first()
        return dataset_info(row) if row is not None else None

    async def find(self, name: str, owners: Sequence[str] | None) -> list[DatasetInfo]:
        """Datasets called `name` among `owners` (team ids, '' for global; None: any)."""
        stmt = select(datasets).where(d.name == name)
        if owners is not None:
            stmt = stmt.where(d.owner.in_(list(owners)))
        async with self._engine.connect() as conn:
            return [dataset_info(row) for row in await conn.execute(stmt)]

    async def in_scope(self, owners: Sequence[str] | None) -> list[DatasetInfo]:
        stmt = select(datasets).order_by(d.name, d.id)
        if owners is not None:
            stmt = stmt.where(d.owner.in_(list(owners)))
        async with self._engine.connect() as conn:
            return [dataset_info(row) for row in await conn.execute(stmt)]

    async def versions(self, dataset_id: str) -> list[VersionInfo]:
        v = dataset_versions.c
        stmt = select(dataset_versions).where(v.dataset_id == dataset_id).order_by(v.version)
        async with self._engine.connect() as conn:
            return [
                VersionInfo(
                    row.version,
                    row.created_at,
                    row.created_by,
                    row.change,
                    dict(row.detail or {}),
                    row.added,
                    row.removed,
                )
                for row in await conn.execute(stmt)
            ]

    async def count(self, dataset_id: str, version: int) -> int:
        stmt = select(func.count()).select_from(dataset_rows).where(in_version(dataset_id, version))
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    # --- reading rows ----------------------------------------------------------------------

    async def live_traces(
        self, dataset_id: str, version: int, trace_ids: Sequence[str]
    ) -> set[str]:
        """Which of `trace_ids` already have a row in `version`."""
        found: set[str] = set()
        async with self._engine.connect() as conn:
            for start in range(0, len(trace_ids), BATCH):
                chunk = list(trace_ids[start : start + BATCH])
                stmt = select(r.source_trace_id).where(
                    in_version(dataset_id, version), r.source_trace_id.in_(chunk)
                )
                found.update(row[0] for row in await conn.execute(stmt))
        return found

    async def page(
        self,
        dataset_id: str,
        version: int,
        after: tuple[int, int] | None = None,
        limit: int = BATCH,
    ) -> list[StoredRow]:
        """Rows of a version in the order they were added, after the (added_in, seq) given."""
        stmt = select(dataset_rows).where(in_version(dataset_id, version))
        if after is not None:
            stmt = stmt.where(tuple_(r.added_in, r.seq) > tuple_(*after))
        stmt = stmt.order_by(r.added_in, r.seq).limit(limit)
        async with self._engine.connect() as conn:
            return [stored_row(row) for row in await conn.execute(stmt)]

    async def batches(self, dataset_id: str, version: int) -> AsyncIterator[list[StoredRow]]:
        """Every row of a version, `BATCH` at a time (one short read each)."""
        after: tuple[int, int] | None = None
        while True:
            rows = await self.page(dataset_id, version, after)
            if not rows:
                return
            yield rows
            after = (rows[-1].added_in, rows[-1].seq)

    async def same_input_batches(
        self, dataset_id: str, version: int
    ) -> AsyncIterator[list[StoredRow]]:
        """Rows whose input occurs more than once in the version, grouped by input (a group
        never splits across batches)."""
        twice = (
            select(r.input_hash)
            .where(in_version(dataset_id, version))
            .group_by(r.input_hash)
            .having(func.count() > 1)
            .order_by(r.input_hash)
        )
        after = ""
        while True:
            async with self._engine.connect() as conn:
                hashes = [
                    row[0]
                    for row in await conn.execute(
                        twice.where(r.input_hash > after).limit(BATCH // 10)
                    )
                ]
                if not hashes:
                    return
                stmt = (
                    select(dataset_rows)
                    .where(in_version(dataset_id, version), r.input_hash.in_(hashes))
                    .order_by(r.input_hash, r.added_in, r.seq)
                )
                rows = [stored_row(row) for row in await conn.execute(stmt)]
            yield rows
            after = hashes[-1]

    # --- exports ---------------------------------------------------------------------------

    async def export_started(self, report: ExportReport) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(dataset_exports).values(_report_values(report)))

    async def export_finished(self, report: ExportReport) -> None:
        values = _report_values(report)
        values.pop("id")
        async with self._engine.begin() as conn:
            await conn.execute(
                update(dataset_exports).where(dataset_exports.c.id == report.id).values(values)
            )

    async def export_report(self, export_id: str) -> ExportReport | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(dataset_exports).where(dataset_exports.c.id == export_id))
            ).first()
        if row is None:
            return None
        return ExportReport(**{c.name: getattr(row, c.name) for c in dataset_exports.columns})


def _report_values(report: ExportReport) -> dict[str, Any]:
    return {c.name: getattr(report, c.name) for c in dataset_exports.columns}
