"""The hash chain, as pure functions: how an entry is hashed and how a link is checked.

Each entry's hash covers the previous entry's hash and the entry's own fields, so changing,
removing or reordering any stored entry breaks every link after it. The fields are hashed as
they are stored (text, and the time formatted to microseconds), so both databases agree.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
"""The `prev_hash` of entry 1."""
_HEX = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: float
    """Epoch seconds, rounded to microseconds."""
    actor: str
    action: str
    target: str
    detail: str
    """Canonical JSON text, exactly as hashed."""
    prev_hash: str
    hash: str

    def detail_data(self) -> Any:
        try:
            return json.loads(self.detail)
        except ValueError:
            return self.detail  # altered into non-JSON: show it as it is


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    """Entries whose links held, from seq 1."""
    first_broken_seq: int | None = None
    reason: str | None = None
    head_hash: str | None = None
    """The last good entry's hash: keep a copy elsewhere to detect a cut-off tail later."""

    @property
    def head(self) -> str | None:
        """`SEQ:HASH` of the last good entry: the anchor to keep elsewhere (`Anchor.parse`)."""
        return f"{self.checked}:{self.head_hash}" if self.head_hash else None


@dataclass(frozen=True, slots=True)
class Anchor:
    """An entry's seq and hash kept outside the database (a ticket, another system's log). A
    chain that is cut off before it, or rewritten from any entry up to it, no longer holds:
    the one tampering that the links alone cannot show is a deleted tail."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, value: str) -> Anchor:
        seq, sep, digest = value.strip().partition(":")
        if not sep or not seq.isdigit() or int(seq) < 1 or not _HEX.fullmatch(digest):
            raise ValueError(f"an anchor is SEQ:HASH as `audit verify` prints it, not {value!r}")
        return cls(int(seq), digest.lower())

    def mismatch(self, entry: AuditEntry) -> str | None:
        if entry.seq == self.seq and entry.hash != self.hash:
            return "hash differs from the anchor kept elsewhere (the chain was rewritten)"
        return None


def canonical_detail(detail: Mapping[str, Any] | None) -> str:
    """Sorted-key, ASCII-only JSON: one spelling per value; non-JSON values become strings."""
    return json.dumps(
        dict(detail or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
    )


def entry_hash(
    prev_hash: str, seq: int, at: float, actor: str, action: str, target: str, detail: str
) -> str:
    fields = [seq, f"{at:.6f}", actor, action, target, detail]
    payload = json.dumps(fields, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{payload}".encode()).hexdigest()


def make_entry(
    prev: AuditEntry | None, at: float, actor: str, action: str, target: str, detail: str
) -> AuditEntry:
    seq = prev.seq + 1 if prev else 1
    prev_hash = prev.hash if prev else GENESIS
    digest = entry_hash(prev_hash, seq, at, actor, action, target, detail)
    return AuditEntry(seq, at, actor, action, target, detail, prev_hash, digest)


def broken_link(entry: AuditEntry, expected_seq: int, prev_hash: str) -> str | None:
    """Why `entry` does not follow the entry before it (None when it does)."""
    if entry.seq != expected_seq:
        return f"entry {expected_seq} is missing (the next stored entry is {entry.seq})"
    if entry.prev_hash != prev_hash:
        return "prev_hash does not match the previous entry's hash"
    at = entry.at
    fields = (entry.actor, entry.action, entry.target, entry.detail)
    if entry_hash(entry.prev_hash, entry.seq, at, *fields) != entry.hash:
        return "hash does not match the entry's contents (the entry was altered)"
    return None
