"""Dataset rows as personal data: an end user's rows leave every version of every dataset.

A row taken from a trace keeps that trace's end user (and an uploaded row the `end_user` its
line named), so erasure finds it. Rows are deleted, not marked: an old version stays readable
but no longer holds them. The export shows each row's content opened (the GDPR export is
audited as a whole, like the traces' bodies in it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.feedback.datasets.rows import unseal
from opsgate.feedback.datasets.stored import stored_row
from opsgate.store.crypto import BodyCipher, DecryptionError
from opsgate.store.tables.datasets import dataset_rows

BATCH = 500
r = dataset_rows.c


class DatasetRows:
    """The GDPR holder for dataset rows (`PersonalData`)."""

    name = "dataset_rows"

    def __init__(self, engine: AsyncEngine, cipher: Callable[[], BodyCipher | None]) -> None:
        self._engine = engine
        self._cipher = cipher

    async def export(self, end_user: str) -> list[dict[str, Any]]:
        cipher = self._cipher()
        out: list[dict[str, Any]] = []
        async with self._engine.connect() as conn:
            stmt = select(dataset_rows).where(r.end_user == end_user).order_by(r.id)
            rows = [stored_row(row) for row in await conn.execute(stmt)]
        for row in rows:
            try:
                content: Any = unseal(cipher, row.id, row.body)
                opened: Any = {
                    "messages": content.messages,
                    "tools": content.tools,
                    "output": content.output,
                    "reference": content.reference,
                }
            except DecryptionError as exc:
                opened = {"error": str(exc)}
            out.append(
                {
                    "dataset_id": row.dataset_id,
                    "row_id": row.id,
                    "added_in": row.added_in,
                    "removed_in": row.removed_in,
                    "source_trace_id": row.source_trace_id,
                    "scores": row.scores,
                    "metadata": row.metadata,
                    "content": opened,
                }
            )
        return out

    async def erase(self, end_user: str) -> dict[str, int]:
        """In batches of short transactions, so writers are never held up for long."""
        total = 0
        while True:
            async with self._engine.begin() as conn:
                picked = select(r.id).where(r.end_user == end_user).limit(BATCH)
                ids = [row[0] for row in await conn.execute(picked)]
                if not ids:
                    return {"dataset_rows": total}
                gone = await conn.execute(delete(dataset_rows).where(r.id.in_(ids)))
                total += gone.rowcount
