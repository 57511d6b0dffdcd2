"""Dataset rows as personal data: an end user's rows leave every version of every dataset.

A row taken from a trace keeps that trace's end user (and an uploaded row the `end_user` its
line named), so erasure finds it. Rows are deleted, not marked: an old version stays readable
but no longer holds them. The export shows each row's content opened (the GDPR export is
audited as a whole, like the traces' bodies in it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsgate.feedback.datasets.rows import unseal
from opsgate.feedback.datasets.store import DatasetStore
from opsgate.store.crypto import BodyCipher, DecryptionError


class DatasetRows:
    """The GDPR holder for dataset rows (`PersonalData`)."""

    name = "dataset_rows"

    def __init__(self, store: DatasetStore, cipher: Callable[[], BodyCipher | None]) -> None:
        self._store = store
        self._cipher = cipher

    async def export(self, end_user: str) -> list[dict[str, Any]]:
        cipher = self._cipher()
        out: list[dict[str, Any]] = []
        for row in await self._store.rows_of(end_user):
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
        return {"dataset_rows": await self._store.erase(end_user)}
