"""Stored datasets as eval input: `dataset: {name: support, version: 3}` reads the rows of one
version of a feedback dataset (feedback/datasets/), in the order they were added, a batch of
500 at a time (flat memory), each opened with the gateway's body keys.

A row gives the run its `messages` (the conversation up to the answer; a model target sends
them as they are, with the row's `tools`), `input` (the last user turn), `context` (system,
developer and tool messages: evals/messages.py) and `expected`: the row's reference (a
reviewer's or user's correction) when it has one, else the answer the model gave when the row
was made, so a run without corrections measures agreement with what was served. The row's
`id`, source trace, model, scores and metadata are there for custom scorers and templates.

Without `version` the dataset's current version is used and pinned in the run's stored spec,
so a resumed run reads the same rows. A row whose body cannot be opened (its key is gone) is a
failed row with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opsgate.evals.messages import question_and_context, text_of
from opsgate.evals.runs.dataset import DatasetRow
from opsgate.evals.runs.spec import DatasetSpec, EvalSpecError
from opsgate.feedback.datasets.model import DatasetInfo, StoredRow
from opsgate.feedback.datasets.rows import RowContent, unseal
from opsgate.feedback.datasets.store import DatasetStore
from opsgate.store.crypto import BodyCipher

Finder = Callable[[str], Awaitable[DatasetInfo]]
"""A dataset by name or id, as the caller may see it (raises 404/409 otherwise)."""


@dataclass(frozen=True, slots=True)
class DatasetReader:
    """Where stored datasets are read from: the store, the body keys, and how a name is
    found for the caller (the admin API: the caller's scope; the CLI: the whole database)."""

    store: DatasetStore
    cipher: BodyCipher | None
    find: Finder


def any_team(store: DatasetStore) -> Finder:
    """Find a dataset by id (`ds_...`) or by name in any team (the CLI, which reads the
    database directly); a name two teams use is ambiguous: give the id."""

    async def find(ref: str) -> DatasetInfo:
        info = await store.get(ref) if ref.startswith("ds_") else None
        found = [info] if info is not None else await store.find(ref, None)
        if not found:
            raise EvalSpecError(f"no dataset {ref!r}")
        if len(found) > 1:
            raise EvalSpecError(
                f"several datasets are named {ref!r} (in different teams); use the id"
            )
        return found[0]

    return find


def row_from(index: int, stored: StoredRow, content: RowContent) -> DatasetRow:
    messages = [dict(m) for m in content.messages]
    question, context = question_and_context(messages)
    target = content.target
    expected = text_of(target.get("content")) if target is not None else None
    row: dict[str, Any] = {
        "id": stored.id,
        "messages": messages,
        "source_trace_id": stored.source_trace_id,
        "model": stored.model,
        "scores": stored.scores,
        "metadata": stored.metadata,
    }
    if content.tools:
        row["tools"] = content.tools
    if expected is not None:
        row["expected"] = expected
    return DatasetRow(index, stored.id, question, messages, None, expected, context, row)


class StoredDataset:
    def __init__(
        self, reader: DatasetReader, info: DatasetInfo, version: int, limit: int | None
    ) -> None:
        self.reader, self.info, self.version, self.limit = reader, info, version, limit
        self.ref = f"{info.name}@{version}"

    async def rows(self) -> AsyncIterator[DatasetRow]:
        index = 0
        async for batch in self.reader.store.batches(self.info.id, self.version):
            for stored in batch:
                if self.limit is not None and index >= self.limit:
                    return
                try:
                    content = unseal(self.reader.cipher, stored.id, stored.body)
                except Exception as exc:  # a missing or rotated-out key, a damaged body
                    reason = f"row {stored.id} cannot be opened: {type(exc).__name__}: {exc}"
                    yield DatasetRow(index, stored.id, error=reason)
                else:
                    yield row_from(index, stored, content)
                index += 1


async def open_stored(spec: DatasetSpec, reader: DatasetReader) -> StoredDataset:
    """The dataset a `{name, version}` spec names; 400 for a version it does not have."""
    assert spec.name is not None
    info = await reader.find(spec.name)
    version = spec.version or info.version
    if version > info.version:
        raise EvalSpecError(
            f"dataset {info.name!r} has versions 1 to {info.version}, not {version}"
        )
    return StoredDataset(reader, info, version, spec.limit)


def pinned(spec: DatasetSpec, dataset: StoredDataset) -> DatasetSpec:
    """The spec with the version read, so a resumed run reads the same rows."""
    return spec.model_copy(update={"version": dataset.version})
