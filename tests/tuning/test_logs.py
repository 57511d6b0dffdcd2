"""A job's log file: bounded, numbered on across resumes, read after a number, never replaced
by an older snapshot (the API and the CLI over it: tests/tuning/test_jobs_api.py)."""

from __future__ import annotations

from pathlib import Path

from opsgate.tuning.logs import LOG_FILE, MAX_LINE, JobLog, after, read


def test_the_log_keeps_its_last_lines_numbered_on_across_a_resume(tmp_path: Path) -> None:
    log = JobLog(tmp_path, keep=5)
    for n in range(8):
        log.add("stdout", f"line {n}\n", at=100.0 + n)
    log.write(log.snapshot())
    kept = read(tmp_path)
    assert [line["seq"] for line in kept] == [4, 5, 6, 7, 8]
    assert [line["line"] for line in kept] == [f"line {n}" for n in range(3, 8)]
    assert log.snapshot() is None  # nothing new: nothing to write

    resumed = JobLog(tmp_path, keep=5)  # a resumed job's runner reads the file back
    resumed.add("stderr", "warning: x", at=200.0)
    resumed.write(resumed.snapshot())
    assert [line["seq"] for line in read(tmp_path)] == [5, 6, 7, 8, 9]
    assert read(tmp_path)[-1] == {"seq": 9, "at": 200.0, "stream": "stderr", "line": "warning: x"}

    newer = after(tmp_path, 7)
    assert [line["seq"] for line in newer["data"]] == [8, 9]
    assert newer["first"] == 5 and newer["last"] == 9
    dropped = after(tmp_path, 1)  # lines 2 to 4 went for the bound: `first` says so
    assert dropped["first"] == 5 and len(dropped["data"]) == 5
    assert after(tmp_path, 9) == {"data": [], "first": 5, "last": 9}
    assert after(tmp_path / "elsewhere", 3) == {"data": [], "first": None, "last": 3}


def test_an_older_snapshot_never_replaces_a_newer_one(tmp_path: Path) -> None:
    log = JobLog(tmp_path)
    log.add("stdout", "one", at=1.0)
    old = log.snapshot()
    log.add("event", '{"event":"done"}', at=2.0)
    new = log.snapshot()
    log.write(new)
    log.write(old)  # a heartbeat's save that finished late
    assert [line["line"] for line in read(tmp_path)] == ["one", '{"event":"done"}']
    assert not (tmp_path / LOG_FILE).with_suffix(".tmp").exists()


def test_a_long_line_is_cut_and_marked(tmp_path: Path) -> None:
    log = JobLog(tmp_path)
    log.add("stderr", "x" * (MAX_LINE + 50), at=1.0)
    log.write(log.snapshot())
    line = read(tmp_path)[0]["line"]
    assert line.endswith(" [cut]") and len(line) == MAX_LINE + len(" [cut]")
