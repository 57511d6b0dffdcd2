"""Distillation records: one JSON file each in the tuning folder (`distill/<id>.json`).

A record is written at each stage of its run (replaced whole, atomically), so a reader on any
replica that shares the tuning folder sees the stage, the counts so far and, at the end, the
comparison. The records are small: counts, figures and reasons, never rows of a dataset (the
held-out conversations the student's worker reads are deleted once it has answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

FOLDER = "distill"


class DistillRecords:
    def __init__(self, root: Callable[[], str]) -> None:
        self._root = root

    def folder(self) -> Path:
        return Path(self._root()) / FOLDER

    def work(self, record_id: str) -> Path:
        """The run's own folder (the student's comparison files)."""
        return self.folder() / record_id

    async def put(self, record: dict[str, Any]) -> None:
        def write() -> None:
            path = self.folder() / f"{record['id']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
            tmp.replace(path)

        await asyncio.to_thread(write)

    async def get(self, record_id: str) -> dict[str, Any] | None:
        if not record_id.startswith("dst_") or not record_id[4:].isalnum():
            return None  # never a path outside the folder
        path = self.folder() / f"{record_id}.json"
        try:
            raw = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        found: dict[str, Any] = orjson.loads(raw)
        return found

    async def all(self, teams: Sequence[str] | None, limit: int) -> list[dict[str, Any]]:
        """Records of `teams` (None: every team), newest first."""

        def read() -> list[dict[str, Any]]:
            out = []
            for path in self.folder().glob("dst_*.json"):
                with contextlib.suppress(OSError, orjson.JSONDecodeError):
                    out.append(orjson.loads(path.read_bytes()))
            return out

        found = await asyncio.to_thread(read)
        mine = [r for r in found if teams is None or (r.get("team_id") or "") in teams]
        return sorted(mine, key=lambda r: r["created_at"], reverse=True)[:limit]
