"""`DatasetService`: datasets as the admin API, the dashboard and the CLI use them.

Scope: a dataset belongs to a team (or, made by an admin without one, to no team). Admins see
every dataset; anyone else sees their own team's, and an id or name outside that answers 404
like an unknown one. Rows taken from traffic stay inside the dataset's team: its filters get the
team forced in, and a queue or trace of another team is not found.

Every change makes a new version; a change that would add and remove nothing makes none.
Exports and reads of row content are audited before anything is opened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.access.permissions import is_global
from opsgate.access.principal import Principal
from opsgate.accounting.tokens import get_tokenizer
from opsgate.audit import AuditLog
from opsgate.config.feedback import MetricConfig
from opsgate.errors import BadRequestError, NotFoundError, PermissionDeniedError
from opsgate.feedback.datasets import importer, sources
from opsgate.feedback.datasets.export import Export, ExportOptions, Renderer
from opsgate.feedback.datasets.formats import FORMATS
from opsgate.feedback.datasets.model import (
    Change,
    DatasetInfo,
    ExportReport,
    StoredRow,
    VersionInfo,
    new_id,
)
from opsgate.feedback.datasets.requests import (
    DatasetCreate,
    DatasetRemove,
    RowSources,
    change_detail,
    in_team,
)
from opsgate.feedback.datasets.rows import RowContent, unseal
from opsgate.feedback.datasets.store import DatasetStore
from opsgate.feedback.scores import ScoreStore
from opsgate.feedback.selection import check_conditions
from opsgate.guard.redact import Redactor
from opsgate.store.crypto import BodyCipher

QueueLookup = Callable[[Principal, str], Awaitable[tuple[str, str | None]]]
"""(queue id, its team) of a review queue `principal` may see (404 otherwise)."""

EXPORTED = "datasets.export"
READ_ROWS = "datasets.read_rows"


@dataclass(slots=True)
class ChangeResult:
    dataset: DatasetInfo
    version: int
    added: int = 0
    removed: int = 0
    matched: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    truncated: bool = False


class DatasetService:
    def __init__(
        self,
        engine: AsyncEngine,
        scores: ScoreStore,
        audit: AuditLog,
        *,
        cipher: Callable[[], BodyCipher | None],
        redactor: Callable[[], Redactor],
        metrics: Callable[[], Mapping[str, MetricConfig]],
        stores_bodies: Callable[[], bool],
        queues: QueueLookup | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = DatasetStore(engine)
        self._engine = engine
        self._scores = scores
        self._audit = audit
        self._cipher = cipher
        self._redactor = redactor
        self._metrics = metrics
        self._stores_bodies = stores_bodies
        self.queues = queues
        self._clock = clock

    # --- scope -----------------------------------------------------------------------------

    @staticmethod
    def owners(who: Principal) -> list[str] | None:
        """The owners (team ids) whose datasets `who` sees; None for everyone's."""
        if is_global(who):
            return None
        return [who.team_id] if who.team_id else []

    async def resolve(self, who: Principal, ref: str) -> DatasetInfo:
        """A dataset by id or name, if `who` may see it; 404 otherwise."""
        owners = self.owners(who)
        info = await self.store.get(ref) if ref.startswith("ds_") else None
        if info is not None and (owners is None or (info.team_id or "") in owners):
            return info
        found = await self.store.find(ref, owners)
        if len(found) > 1:
            raise ConflictError(
                f"several datasets are named {ref!r} (in different teams); use the id",
                code="ambiguous_name",
            )
        if not found:
            raise NotFoundError(f"no dataset {ref!r}", code="dataset_not_found")
        return found[0]

    def _team_for(self, who: Principal, asked: str | None) -> str | None:
        if is_global(who):
            return asked
        if who.team_id is None:
            raise PermissionDeniedError("a key without a team cannot own datasets")
        if asked not in (None, who.team_id):
            raise PermissionDeniedError(
                f"team_id {asked!r} is outside your scope (team_id {who.team_id!r})",
                code="outside_scope",
                param="team_id",
            )
        return who.team_id

    # --- reading ---------------------------------------------------------------------------

    async def listed(self, who: Principal) -> list[tuple[DatasetInfo, int]]:
        found = await self.store.in_scope(self.owners(who))
        counts = [await self.store.count(i.id, i.version) for i in found]
        return list(zip(found, counts, strict=True))

    async def show(self, who: Principal, ref: str) -> tuple[DatasetInfo, int, list[VersionInfo]]:
        info = await self.resolve(who, ref)
        count = await self.store.count(info.id, info.version)
        return info, count, await self.store.versions(info.id)

    async def delete(self, who: Principal, ref: str) -> DatasetInfo:
        info = await self.resolve(who, ref)
        await self.store.delete(info.id)
        return info

    def version_of(self, info: DatasetInfo, asked: int | None) -> int:
        if asked is None:
            return info.version
        if not 1 <= asked <= info.version:
            raise NotFoundError(
                f"dataset {info.name!r} has versions 1 to {info.version}, not {asked}",
                code="version_not_found",
                param="version",
            )
        return asked

    async def rows(
        self,
        who: Principal,
        ref: str,
        *,
        version: int | None,
        after: tuple[int, int] | None,
        limit: int,
        content: bool,
        actor: str,
    ) -> tuple[DatasetInfo, int, list[tuple[StoredRow, RowContent | None]]]:
        """A page of a version's rows; with `content`, opened (an audited read)."""
        info = await self.resolve(who, ref)
        at = self.version_of(info, version)
        page = await self.store.page(info.id, at, after, limit)
        if not content:
            return info, at, [(row, None) for row in page]
        await self._audit.append(actor, READ_ROWS, f"dataset:{info.id}", {"version": at})
        cipher = self._cipher()
        return info, at, [(row, unseal(cipher, row.id, row.body)) for row in page]

    # --- changes ---------------------------------------------------------------------------

    async def create(self, who: Principal, req: DatasetCreate, actor: str) -> ChangeResult:
        team = self._team_for(who, req.team_id)
        self._check_sources(req)
        info, change = await self.store.create(
            req.name, team, req.description, actor, self._clock()
        )
        try:
            return await self._apply(who, info, change, req, actor, "create", always=True)
        except BaseException:  # a dataset whose first version failed is not kept
            await asyncio.shield(self.store.delete(info.id))
            raise

    async def add(self, who: Principal, ref: str, req: RowSources, actor: str) -> ChangeResult:
        self._check_sources(req)
        info = await self.resolve(who, ref)
        change = await self.store.begin(info.id, self._clock())
        return await self._apply(who, info, change, req, actor, "add")

    async def remove(
        self, who: Principal, ref: str, req: DatasetRemove, actor: str
    ) -> ChangeResult:
        if not req.row_ids and not req.trace_ids:
            raise BadRequestError("name row_ids or trace_ids to remove", code="nothing_to_remove")
        info = await self.resolve(who, ref)
        change = await self.store.begin(info.id, self._clock())
        try:
            removed = await self.store.remove_rows(
                change, self._clock(), row_ids=req.row_ids, trace_ids=req.trace_ids
            )
            if not removed:
                await self.store.abandon(change)
                return ChangeResult(info, info.version)
            detail = {"row_ids": len(req.row_ids), "trace_ids": len(req.trace_ids)}
            await self.store.commit(change, "remove", detail, 0, removed, actor, self._clock())
        except BaseException:
            await asyncio.shield(self.store.abandon(change))
            raise
        return ChangeResult(await self._current(info), change.version, removed=removed)

    async def import_lines(
        self,
        who: Principal,
        ref: str,
        lines: AsyncIterator[tuple[int, bytes]],
        actor: str,
    ) -> ChangeResult:
        """Rows from a JSONL upload, all or nothing."""
        info = await self.resolve(who, ref)
        change = await self.store.begin(info.id, self._clock())
        cipher = self._cipher()
        added = 0
        try:
            batch: list[tuple[int, bytes]] = []
            async for item in lines:
                batch.append(item)
                if len(batch) >= sources.CHUNK:
                    added += await self._import_batch(change, batch, cipher, added)
                    batch = []
            added += await self._import_batch(change, batch, cipher, added)
            if not added:
                raise BadRequestError("the upload holds no rows", code="empty_upload")
            await self.store.commit(change, "import", {}, added, 0, actor, self._clock())
        except BaseException:
            await asyncio.shield(self.store.abandon(change))
            raise
        return ChangeResult(await self._current(info), change.version, added=added)

    async def _import_batch(
        self, change: Change, batch: list[tuple[int, bytes]], cipher: BodyCipher | None, seq: int
    ) -> int:
        if not batch:
            return 0
        if seq + len(batch) > importer.MAX_IMPORT_ROWS:
            raise BadRequestError(
                f"an upload may hold at most {importer.MAX_IMPORT_ROWS} rows",
                code="too_many_rows",
            )
        now = self._clock()

        def parse() -> list[Any]:
            parsed = [importer.parse_line(raw, number) for number, raw in batch]
            return importer.to_rows(parsed, cipher, now)

        rows = await asyncio.to_thread(parse)
        await self.store.add_rows(change, rows, seq, now)
        return len(rows)

    def _check_sources(self, req: RowSources) -> None:
        metrics = self._metrics()
        for i, flt in enumerate(req.from_traces or ()):
            check_conditions(flt, metrics, f"from_traces[{i}]")
        if req.uses_traffic and not self._stores_bodies():
            raise ConflictError(
                "Datasets are built from the prompts and answers stored with traces, and "
                "traces.store_bodies is off: set it to `full` or `masked` (traces recorded "
                "before then have no bodies). Rows can still be uploaded as JSONL.",
                code="bodies_not_stored",
            )

    async def _apply(
        self,
        who: Principal,
        info: DatasetInfo,
        change: Change,
        req: RowSources,
        actor: str,
        kind: str,
        *,
        always: bool = False,
    ) -> ChangeResult:
        result = ChangeResult(info, change.version)
        try:
            if req.uses_traffic:
                await self._from_traffic(who, info, change, req, result)
            if req.rows:
                await self._inline(change, req.rows, result)
            if not result.added and not always:
                await self.store.abandon(change)
                result.version = info.version
                return result
            detail = change_detail(req, result.matched, result.truncated)
            await self.store.commit(change, kind, detail, result.added, 0, actor, self._clock())
        except BaseException:
            await asyncio.shield(self.store.abandon(change))
            raise
        result.dataset = await self._current(info)
        return result

    async def _from_traffic(
        self,
        who: Principal,
        info: DatasetInfo,
        change: Change,
        req: RowSources,
        result: ChangeResult,
    ) -> None:
        now = self._clock()
        parts: list[sources.Picked] = []
        if req.from_traces:
            scoped = [in_team(flt, info.team_id, i) for i, flt in enumerate(req.from_traces)]
            parts.append(await sources.pick_traces(self._engine, scoped, req.limit, now))
        if req.from_queue:
            parts.append(await self._pick_queue(who, info, req.from_queue, req.limit))
        if req.trace_ids:
            parts.append(await sources.pick_ids(self._engine, req.trace_ids, info.team_id))
        picked = sources.merge(parts)
        result.matched = picked.matched
        present = await self.store.live_traces(info.id, info.version, picked.trace_ids)
        ids = [t for t in picked.trace_ids if t not in present]
        result.truncated = len(ids) > req.limit
        ids = ids[: req.limit]
        result.skipped = {"without_bodies": picked.without_bodies, "already_in": len(present)}
        if picked.without_bodies and not ids and not present:
            raise ConflictError(
                f"{picked.without_bodies} traces matched, but none was stored with its prompt "
                "and answer (traces.store_bodies was off when they were recorded)",
                code="bodies_not_stored",
            )
        for start in range(0, len(ids), sources.CHUNK):
            built = await sources.build_rows(
                self._engine, self._scores, self._cipher, ids[start : start + sources.CHUNK]
            )
            await self.store.add_rows(change, built.rows, result.added, self._clock())
            result.added += len(built.rows)
            result.skipped["not_chat"] = result.skipped.get("not_chat", 0) + built.not_chat
            skipped = result.skipped.get("undecryptable", 0) + built.undecryptable
            result.skipped["undecryptable"] = skipped

    async def _pick_queue(
        self, who: Principal, info: DatasetInfo, ref: str, limit: int
    ) -> sources.Picked:
        if self.queues is None:
            raise BadRequestError("review queues are not available", code="no_review_queues")
        queue_id, team = await self.queues(who, ref)
        if info.team_id is not None and team != info.team_id:
            raise NotFoundError(f"no review queue {ref!r}", code="queue_not_found")
        return await sources.pick_queue(self._engine, queue_id, limit)

    async def _inline(
        self, change: Change, rows: list[dict[str, Any]], result: ChangeResult
    ) -> None:
        cipher, now = self._cipher(), self._clock()

        def parse() -> list[Any]:
            parsed = [importer.parse_object(row, f"rows[{i}]") for i, row in enumerate(rows)]
            return importer.to_rows(parsed, cipher, now)

        built = await asyncio.to_thread(parse)
        await self.store.add_rows(change, built, result.added, now)
        result.added += len(built)

    async def _current(self, info: DatasetInfo) -> DatasetInfo:
        return await self.store.get(info.id) or info

    # --- export ----------------------------------------------------------------------------

    async def export(
        self,
        who: Principal,
        ref: str,
        *,
        fmt: str,
        version: int | None,
        redact: bool,
        metric: str | None,
        actor: str,
    ) -> tuple[DatasetInfo, Export, int]:
        """An export ready to stream (its audit entry already written), and the version's
        row count (what a progress bar counts towards)."""
        if fmt not in FORMATS:
            raise BadRequestError(
                f"format must be one of {', '.join(FORMATS)}", code="invalid_format", param="format"
            )
        optimize = "max"
        if metric is not None:
            declared = self._metrics().get(metric)
            if fmt != "preference":
                raise BadRequestError("metric applies to the preference format", param="metric")
            if declared is None or declared.type not in ("boolean", "float"):
                raise BadRequestError(
                    f"metric {metric!r} is not a declared boolean or float metric",
                    code="unknown_metric",
                    param="metric",
                )
            optimize = declared.optimize
        info = await self.resolve(who, ref)
        at = self.version_of(info, version)
        detail = {"format": fmt, "version": at, "redact": redact}
        await self._audit.append(actor, EXPORTED, f"dataset:{info.id}", detail)
        options = ExportOptions(fmt, at, redact, metric, optimize)  # type: ignore[arg-type]
        renderer = Renderer(
            options, self._cipher(), self._redactor() if redact else None, get_tokenizer()
        )
        report = ExportReport(
            new_id("dx"), info.id, at, fmt, redact, 0, 0, 0, 0, 0, actor, self._clock(), None
        )
        return (
            info,
            Export(self.store, report, info.id, renderer),
            await self.store.count(info.id, at),
        )

    async def export_report(self, who: Principal, ref: str, export_id: str) -> ExportReport:
        info = await self.resolve(who, ref)
        report = await self.store.export_report(export_id)
        if report is None or report.dataset_id != info.id:
            raise NotFoundError(f"no export {export_id!r}", code="export_not_found")
        return report
