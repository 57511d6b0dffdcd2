"""Exporting a dataset version as JSONL: streamed, redacted, without exact duplicates, counted.

Rows are read `store.BATCH` at a time and each batch is rendered in a worker thread (open the
sealed bodies, build the format's lines, replace PII through the guard's detectors, drop lines
already written, count tokens), so memory stays flat whatever the size and the event loop keeps
serving. What grows with the export is the set of line digests that finds duplicates (8 bytes
of BLAKE2b per line written, a few MB per 100,000 lines).

`preference` runs two passes: rows with a correction (chosen: the correction, rejected: the
original answer), then, with a `metric`, groups of rows that share an input (best against worst
answer by that metric, when their scores differ).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from opsgate.accounting.tokens import Tokenizer, count_prompt_tokens
from opsgate.feedback.datasets.formats import Format, Line, chat_line, eval_line, preference_line
from opsgate.feedback.datasets.model import ExportReport, StoredRow
from opsgate.feedback.datasets.rows import RowContent, unseal
from opsgate.feedback.datasets.store import DatasetStore
from opsgate.guard.pii import Detector
from opsgate.guard.redact import Redactor
from opsgate.guard.service import GuardService, ner_types
from opsgate.guard.verdicts import PII_TYPES
from opsgate.store.crypto import BodyCipher, DecryptionError


@dataclass(frozen=True, slots=True)
class ExportOptions:
    format: Format
    version: int
    redact: bool = True
    metric: str | None = None
    """preference: pair answers to the same input by this metric."""
    optimize: Literal["max", "min"] = "max"


def export_redactor(guard: GuardService | None) -> Redactor:
    """The guard's detectors as masking uses them (every PII type, the NER types a policy
    asks for, secrets), without the guard's scan limit: an export scans every character."""
    if guard is None:
        return Redactor(Detector(PII_TYPES))
    types = (*PII_TYPES, *ner_types(guard.config))
    return Redactor(guard.detector(types, secrets=True))


class Renderer:
    """Turns batches of stored rows into JSONL bytes; one per export (it keeps the digests)."""

    def __init__(
        self,
        options: ExportOptions,
        cipher: BodyCipher | None,
        redactor: Redactor | None,
        tokenizer: Tokenizer,
    ) -> None:
        self.options = options
        self._cipher = cipher
        self._redactor = redactor
        self._tokenizer = tokenizer
        self._seen: set[bytes] = set()
        self.rows = self.duplicates = self.skipped = self.redactions = self.tokens = 0
        self.undecryptable = 0

    def rows_of(self, batch: Sequence[StoredRow]) -> bytes:
        """Pass one: a line per row (for `preference`, per row with a correction)."""
        out: list[bytes] = []
        for row in batch:
            content = self._open(row)
            if content is None:
                continue
            self._emit(self._line(row, content), out)
        return b"".join(out)

    def pairs_of(self, group: Sequence[StoredRow]) -> bytes:
        """Pass two of `preference`: rows sharing an input, best answer against worst."""
        metric = self.options.metric
        out: list[bytes] = []
        start = 0
        while start < len(group):
            end = start
            while end < len(group) and group[end].input_hash == group[start].input_hash:
                end += 1
            scored = [
                (float(row.scores[metric]), row)
                for row in group[start:end]
                if metric in row.scores and row.has_output and row.scores[metric] is not None
            ]
            start = end
            if len(scored) < 2:
                continue
            scored.sort(key=lambda pair: pair[0], reverse=self.options.optimize == "max")
            (best, good), (worst, bad) = scored[0], scored[-1]
            if best == worst:
                continue
            chosen, rejected = self._open(good), self._open(bad)
            if chosen is None or rejected is None or not chosen.output or not rejected.output:
                continue
            self._emit(preference_line(chosen, chosen.output, rejected.output), out)
        return b"".join(out)

    def _open(self, row: StoredRow) -> RowContent | None:
        try:
            return unseal(self._cipher, row.id, row.body)
        except DecryptionError:
            self.undecryptable += 1
            self.skipped += 1
            return None

    def _line(self, row: StoredRow, content: RowContent) -> Line | None:
        fmt = self.options.format
        if fmt == "openai-chat":
            return chat_line(content)
        if fmt == "eval":
            return eval_line(content, row.id, row.source_trace_id, row.metadata)
        if content.reference is None or content.output is None:
            return None
        return preference_line(content, content.reference, content.output)

    def _emit(self, line: Line | None, out: list[bytes]) -> None:
        if line is None:
            self.skipped += 1
            return
        messages = line.messages
        if self._redactor is not None:
            messages, findings, _ = self._redactor.redact_messages(messages)
            self.redactions += len(findings)
        key = orjson.dumps(line.key(messages), option=orjson.OPT_SORT_KEYS)
        digest = hashlib.blake2b(key, digest_size=8).digest()
        if digest in self._seen:
            self.duplicates += 1
            return
        self._seen.add(digest)
        self.tokens += count_prompt_tokens(messages, tools=line.tools, tokenizer=self._tokenizer)
        self.rows += 1
        out.append(orjson.dumps(line.assemble(messages)) + b"\n")


class Export:
    """One export run: `lines()` streams the JSONL; the report is stored when it ends (also
    when the client goes away: `completed_at` then stays empty)."""

    def __init__(
        self, store: DatasetStore, report: ExportReport, dataset_id: str, renderer: Renderer
    ) -> None:
        self.store = store
        self.report = report
        self.dataset_id = dataset_id
        self.renderer = renderer

    async def lines(self) -> AsyncIterator[bytes]:
        options = self.renderer.options
        await self.store.export_started(self.report)
        complete = False
        try:
            async for batch in self.store.batches(self.dataset_id, options.version):
                chunk = await asyncio.to_thread(self.renderer.rows_of, batch)
                if chunk:
                    yield chunk
            if options.format == "preference" and options.metric:
                groups = self.store.same_input_batches(self.dataset_id, options.version)
                async for group in groups:
                    chunk = await asyncio.to_thread(self.renderer.pairs_of, group)
                    if chunk:
                        yield chunk
            complete = True
        finally:
            self.report = self._counted(complete)
            await asyncio.shield(self.store.export_finished(self.report))

    def _counted(self, complete: bool) -> ExportReport:
        r = self.renderer
        return replace(
            self.report,
            rows=r.rows,
            duplicates=r.duplicates,
            skipped=r.skipped,
            redactions=r.redactions,
            tokens=r.tokens,
            completed_at=time.time() if complete else None,
        )


def report_json(report: ExportReport) -> dict[str, Any]:
    return {
        "object": "dataset.export",
        "id": report.id,
        "dataset_id": report.dataset_id,
        "version": report.version,
        "format": report.format,
        "redacted": report.redacted,
        "rows": report.rows,
        "duplicates_dropped": report.duplicates,
        "skipped": report.skipped,
        "redactions": report.redactions,
        "tokens": report.tokens,
        "actor": report.actor,
        "started_at": report.started_at,
        "completed_at": report.completed_at,
        "complete": report.completed_at is not None,
    }
