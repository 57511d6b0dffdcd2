"""A job's log: the worker's stdout and stderr lines and its events, the last `KEEP` of them,
numbered, in `logs.jsonl` in the job folder.

The runner adds lines as the worker writes them and saves the file at every heartbeat and when
the worker ends: the lines are taken on the event loop (`snapshot`), written whole in a thread
to a temporary file, then renamed (a reader never sees half a file; an older snapshot never
replaces a newer one). Sequence numbers go on across resumes (the file is read back first), so
a reader asking for the lines after the last one it saw (`GET .../logs?after=N`) gets each line
once; when lines were dropped for the bound meanwhile, the answer's `first` says where the kept
ones start.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

import orjson

LOG_FILE = "logs.jsonl"
KEEP = 500
"""Lines a job keeps (the oldest go first)."""
MAX_LINE = 2000
"""Characters of one line kept (a longer one is cut and marked)."""


class JobLog:
    """The lines of one job, kept in memory by its runner and saved to the job folder."""

    def __init__(self, folder: Path, keep: int = KEEP) -> None:
        self.path = folder / LOG_FILE
        self.lines: deque[dict[str, Any]] = deque(read(folder), maxlen=keep)
        self.seq = self.lines[-1]["seq"] if self.lines else 0
        self._taken = self._written = self.seq
        self._lock = threading.Lock()

    def add(self, stream: str, text: str, at: float) -> None:
        line = text.rstrip("\r\n")
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE] + " [cut]"
        self.seq += 1
        self.lines.append({"seq": self.seq, "at": round(at, 3), "stream": stream, "line": line})

    def snapshot(self) -> tuple[int, bytes] | None:
        """The file's content when lines came since the last snapshot (take it where lines
        are added: the event loop)."""
        if self.seq == self._taken:
            return None
        self._taken = self.seq
        return self.seq, b"".join(orjson.dumps(line) + b"\n" for line in self.lines)

    def write(self, taken: tuple[int, bytes] | None) -> None:
        """Save a snapshot (in a thread), unless a newer one was saved already."""
        if taken is None or not self.path.parent.is_dir():
            return
        seq, content = taken
        with self._lock:
            if seq <= self._written:
                return
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(content)
            os.replace(tmp, self.path)
            self._written = seq


def read(folder: Path) -> list[dict[str, Any]]:
    """The kept lines of a job (none when it has not started or its folder is elsewhere)."""
    try:
        raw = (folder / LOG_FILE).read_bytes()
    except FileNotFoundError:
        return []
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


def after(folder: Path, seq: int) -> dict[str, Any]:
    """The lines numbered above `seq`; `last`: the number to ask after next time; `first`: the
    oldest line kept (above `seq + 1`: lines were dropped in between)."""
    lines = read(folder)
    newer = [line for line in lines if line["seq"] > seq]
    return {
        "data": newer,
        "first": lines[0]["seq"] if lines else None,
        "last": newer[-1]["seq"] if newer else seq,
    }
