"""The journal file: bodies survive base64, cut lines are repaired, one process per file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opsgate.store import Journal, JournalLockedError, default_journal_path
from opsgate.store.codec import from_journal_line, to_journal_line
from tests.store.conftest import make_trace


async def _read_all(journal: Journal, file: Path) -> list[str]:
    return [r.trace_id async for batch in journal.read_batches(file, 3) for r in batch]


def test_a_journal_line_round_trips_bodies_and_spans() -> None:
    record = make_trace(7, request_body=b"\x00\xffprompt", response_body=b"", metadata={"a": "b"})
    assert from_journal_line(to_journal_line(record)) == record


def test_a_journal_line_tolerates_unknown_fields() -> None:
    line = to_journal_line(make_trace(1)).replace(b'"trace_id"', b'"future_field":1,"trace_id"')
    assert from_journal_line(line).trace_id == "tr-000001"
    with pytest.raises(ValueError, match="journal"):
        from_journal_line(b'{"v": 1}')


async def test_append_rotate_replay_discard(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    await journal.append([make_trace(i) for i in range(5)])
    file = await journal.next_for_replay()
    assert file == journal.replaying
    await journal.append([make_trace(9)])  # arrives during replay: goes to a fresh file
    assert await _read_all(journal, file) == [f"tr-{i:06d}" for i in range(5)]
    assert await journal.next_for_replay() == file  # not discarded yet: replay it again
    await journal.discard(file)
    file = await journal.next_for_replay()
    assert file is not None
    assert await _read_all(journal, file) == ["tr-000009"]
    await journal.discard(file)
    assert await journal.next_for_replay() is None
    assert not journal.has_backlog()


async def test_a_line_cut_by_a_crash_is_skipped_and_the_next_append_stays_whole(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    await journal.append([make_trace(1)])
    whole = to_journal_line(make_trace(2))
    with journal.path.open("ab") as f:
        f.write(whole[: len(whole) // 2])  # the process died mid-write
    await journal.append([make_trace(3)])
    file = await journal.next_for_replay()
    assert file is not None
    assert await _read_all(journal, file) == ["tr-000001", "tr-000003"]
    assert journal.corrupt == 1


async def test_unreadable_lines_do_not_end_the_replay_early(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    journal.path.write_bytes(b"garbage\n" * 7 + to_journal_line(make_trace(4)))
    file = await journal.next_for_replay()
    assert file is not None
    assert await _read_all(journal, file) == ["tr-000004"]
    assert journal.corrupt == 7


def test_one_process_per_journal(tmp_path: Path) -> None:
    first, second = Journal(tmp_path / "j.jsonl"), Journal(tmp_path / "j.jsonl")
    first.acquire()
    with pytest.raises(JournalLockedError, match="own journal path"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


async def test_files_oldest_first_and_locked_holds_appends_off(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    assert list(journal.files()) == []
    await journal.append([make_trace(1)])
    await journal.next_for_replay()
    await journal.append([make_trace(2)])
    await journal.append([make_trace(3)], rejected=True)
    assert list(journal.files()) == [journal.replaying, journal.path, journal.rejected]

    with journal.locked():
        pending = asyncio.create_task(journal.append([make_trace(4)]))
        await asyncio.sleep(0.2)
        assert not pending.done(), "an append ran while the journal was locked"
        size = journal.path.stat().st_size
    await pending
    assert journal.path.stat().st_size > size


def test_default_journal_path() -> None:
    assert default_journal_path("sqlite:///./opsgate.db") == Path("./opsgate-journal.jsonl")
    assert default_journal_path("sqlite:////var/lib/og/x.db") == Path("/var/lib/og/x-journal.jsonl")
    assert default_journal_path("postgresql://u@h/db") == Path("opsgate-journal.jsonl")
    assert default_journal_path("sqlite://") == Path("opsgate-journal.jsonl")
