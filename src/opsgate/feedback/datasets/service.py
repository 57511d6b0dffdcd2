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
from collections.abc import AsyncIterator, Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.access.permissions import is_global, owning_team
from opsgate.access.principal import Principal
from opsgate.accounting.tokens import get_tokenizer
from opsgate.audit import AuditLog
from opsgate.config.feedback import MetricConfig
from opsgate.errors import BadRequestError, NotFoundError
from opsgate.feedback.datasets import sources
from opsgate.feedback.datasets.export import Export, ExportOptions, Renderer
from opsgate.feedback.datasets.filling import ChangeFiller, ChangeResult, QueueLookup
from opsgate.feedback.datasets.formats import FORMATS
from opsgate.feedback.datasets.model import (
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
)
from opsgate.feedback.datasets.rows import RowContent, unseal
from opsgate.feedback.datasets.store import DatasetStore
from opsgate.feedback.scores import ScoreStore
from opsgate.guard.redact import Redactor
from opsgate.store.crypto import BodyCipher

EXPORTED = "datasets.export"
READ_ROWS = "datasets.read_rows"


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
        self._audit = audit
        self._cipher = cipher
        self._redactor = redactor
        self._metrics = metrics
        self._clock = clock
        self._filler = ChangeFiller(
            engine,
            self.store,
            scores,
            cipher=cipher,
            metrics=metrics,
            stores_bodies=stores_bodies,
            queues=queues,
            clock=clock,
        )

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
        return owning_team(who, asked, "datasets")

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
        self._filler.check_sources(req)
        info, change = await self.store.create(
            req.name, team, req.description, actor, self._clock()
        )
        try:
            return await self._filler.apply(who, info, change, req, actor, "create", always=True)
        except BaseException:  # a dataset whose first version failed is not kept
            await asyncio.shield(self.store.delete(info.id))
            raise

    async def add(self, who: Principal, ref: str, req: RowSources, actor: str) -> ChangeResult:
        self._filler.check_sources(req)
        info = await self.resolve(who, ref)
        change = await self.store.begin(info.id, self._clock())
        return await self._filler.apply(who, info, change, req, actor, "add")

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
        return ChangeResult(await self._filler.current(info), change.version, removed=removed)

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
                    added += await self._filler.import_batch(change, batch, cipher, added)
                    batch = []
            added += await self._filler.import_batch(change, batch, cipher, added)
            if not added:
                raise BadRequestError("the upload holds no rows", code="empty_upload")
            await self.store.commit(change, "import", {}, added, 0, actor, self._clock())
        except BaseException:
            await asyncio.shield(self.store.abandon(change))
            raise
        return ChangeResult(await self._filler.current(info), change.version, added=added)

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
