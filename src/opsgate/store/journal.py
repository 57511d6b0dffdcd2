"""The local append-only journal: traces that could not reach the database yet.

One JSONL line per trace, fsync'd before the writer counts it as kept. Replay never reads the
file being appended to: it first renames `<journal>` to `<journal>.replaying` (new appends start
a fresh file), replays that, and deletes it only once every line is in the database. A crash at
any point leaves either file behind, and the next start replays it; duplicates are harmless
because the store is idempotent. Lines the database refuses go to `<journal>.rejected`.

All file work runs in worker threads (never on the event loop) and under one thread lock, so an
append cancelled on the asyncio side still finishes before the next file operation starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from opsgate.store.codec import from_journal_line, to_journal_line
from opsgate.trace import TraceRecord

if sys.platform != "win32":
    import fcntl

log = logging.getLogger("opsgate.store.journal")

DEFAULT_NAME = "opsgate-journal.jsonl"


class JournalLockedError(RuntimeError):
    """Another process holds this journal; each process needs its own journal path."""


def default_journal_path(database_url: str) -> Path:
    """Next to a SQLite file (`<dir>/<stem>-journal.jsonl`), else `./opsgate-journal.jsonl`.

    Never `<db>-journal`: that name is SQLite's own rollback journal.
    """
    url = make_url(database_url)
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        db_path = Path(database)
        return db_path.with_name(f"{db_path.stem}-journal.jsonl")
    return Path(DEFAULT_NAME)


def _fsync_dir(directory: Path) -> None:
    """Make a create, rename or unlink durable, not only the file's bytes."""
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_bytes(path: Path, data: bytes) -> None:
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a crash cut the last line short; keep the next one whole
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


class Journal:
    """One process's journal file, its replay file and its dead-letter file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.replaying = self.path.with_name(self.path.name + ".replaying")
        self.rejected = self.path.with_name(self.path.name + ".rejected")
        self._lockfile = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None
        self.corrupt = 0
        """Lines that could not be parsed during replay (logged, then skipped)."""

    # -- process lock -----------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the journal for this process; raises `JournalLockedError` if another holds it."""
        if self._lock_fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lockfile, os.O_RDWR | os.O_CREAT, 0o600)
        if sys.platform != "win32":
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                raise JournalLockedError(
                    f"trace journal {self.path} is in use by another process; "
                    "give each gateway process its own journal path"
                ) from exc
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    # -- writing ----------------------------------------------------------------------------

    def append_sync(self, records: list[TraceRecord], *, rejected: bool = False) -> None:
        """Append and fsync; blocking, so call it from a thread (or at shutdown)."""
        if not records:
            return
        data = b"".join(to_journal_line(r) for r in records)
        with self._thread_lock:
            _append_bytes(self.rejected if rejected else self.path, data)

    async def append(self, records: list[TraceRecord], *, rejected: bool = False) -> None:
        await asyncio.to_thread(self.append_sync, records, rejected=rejected)

    # -- replay -----------------------------------------------------------------------------

    def _rotate_sync(self) -> Path | None:
        with self._thread_lock:
            if self.replaying.exists():
                return self.replaying
            if not self.path.exists() or self.path.stat().st_size == 0:
                return None
            os.replace(self.path, self.replaying)
            _fsync_dir(self.path.parent)
            return self.replaying

    async def next_for_replay(self) -> Path | None:
        """The file to replay next (rotating the live journal aside), or None when empty."""
        return await asyncio.to_thread(self._rotate_sync)

    def _read_sync(self, file: Path, offset: int, count: int) -> tuple[list[TraceRecord], int]:
        """Up to `count` records from byte `offset`, and the offset after them (-1 at the end).

        The file is opened and closed within the call, so a cancelled replay leaks no handle.
        """
        records: list[TraceRecord] = []
        with file.open("rb") as handle:
            handle.seek(offset)
            while len(records) < count:
                line = handle.readline()
                if not line:
                    return records, -1
                if not line.strip():
                    continue
                try:
                    records.append(from_journal_line(line))
                except ValueError as exc:
                    self.corrupt += 1
                    log.error("skipping unreadable journal line in %s: %s", file, exc)
            return records, handle.tell()

    async def read_batches(self, file: Path, size: int) -> AsyncGenerator[list[TraceRecord], None]:
        """Yield the file's records `size` at a time."""
        offset = 0
        while offset >= 0:
            batch, offset = await asyncio.to_thread(self._read_sync, file, offset, size)
            if batch:
                yield batch

    def _discard_sync(self, file: Path) -> None:
        with self._thread_lock:
            file.unlink(missing_ok=True)
            _fsync_dir(file.parent)

    async def discard(self, file: Path) -> None:
        """Delete a fully replayed file."""
        await asyncio.to_thread(self._discard_sync, file)

    # -- for tools that rewrite the files in place (an erasure) -------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold off appends, rotation and discards while the caller reads and rewrites the
        files; blocking, so use it from a thread."""
        with self._thread_lock:
            yield

    def files(self) -> Iterator[Path]:
        """The files that exist, oldest lines first: replaying, live, rejected."""
        for path in (self.replaying, self.path, self.rejected):
            if path.exists():
                yield path

    def has_backlog(self) -> bool:
        """Whether anything waits for replay (a stat; call from a thread or tests)."""
        live = self.path.exists() and self.path.stat().st_size > 0
        return live or self.replaying.exists()
