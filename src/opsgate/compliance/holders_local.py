"""Personal data outside the database: the trace journal on this machine, and the cache.

The journal holds traces that have not reached the database yet (it was down). An end user's
lines are overwritten in place with spaces rather than cut out: replay reads the file by byte
offset and skips blank lines, so a replay running at the same moment loses nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsgate.cache.service import CacheService
from opsgate.compliance.bodies import open_bodies
from opsgate.store.codec import from_journal_line
from opsgate.store.crypto import BodyCipher
from opsgate.store.journal import Journal
from opsgate.trace import TraceRecord


def _lines_of(path: Path, end_user: str) -> list[tuple[int, bytes, TraceRecord]]:
    """(offset, raw line, record) for each of the end user's lines in one journal file."""
    found = []
    offset = 0
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                try:
                    record = from_journal_line(line)
                except ValueError:
                    record = None
                if record is not None and record.end_user == end_user:
                    found.append((offset, line, record))
            offset += len(line)
    return found


def _blank(path: Path, lines: list[tuple[int, bytes, TraceRecord]]) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset, line, _ in lines:
            keep = b"\n" if line.endswith(b"\n") else b""
            os.pwrite(fd, b" " * (len(line) - len(keep)) + keep, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


class JournalData:
    """The end user's traces in this process's journal, replay and dead-letter files."""

    name = "journal"

    def __init__(
        self, journal: Callable[[], Journal | None], cipher: Callable[[], BodyCipher | None]
    ) -> None:
        self._journal = journal  # a callable: the gateway may move to another journal slot
        self._cipher = cipher

    def _scan(self, end_user: str, *, erase: bool) -> list[TraceRecord]:
        journal = self._journal()
        if journal is None:
            return []
        records: list[TraceRecord] = []
        with journal.locked():  # no append, rotation or discard while we read and write
            for path in journal.files():
                lines = _lines_of(path, end_user)
                if erase and lines:
                    _blank(path, lines)
                records += [record for _, _, record in lines]
        return records

    async def export(self, end_user: str) -> list[dict[str, Any]]:
        records = await asyncio.to_thread(self._scan, end_user, erase=False)
        cipher = self._cipher()
        out = []
        for record in records:
            data = dataclasses.asdict(record)
            open_bodies(cipher, data)
            out.append(data)
        return out

    async def erase(self, end_user: str) -> dict[str, int]:
        records = await asyncio.to_thread(self._scan, end_user, erase=True)
        return {"journal": len(records)}


class CacheData:
    """Cached answers made by the end user's requests (exact entries and semantic questions).

    Export lists nothing: a cached answer is a copy of a response already in the traces.
    """

    name = "cache"

    def __init__(self, cache: CacheService) -> None:
        self._cache = cache

    async def export(self, end_user: str) -> None:
        return None

    async def erase(self, end_user: str) -> dict[str, int]:
        purged = await self._cache.erase_end_user(end_user)
        return {"cache.exact": purged.exact, "cache.semantic": purged.semantic}
