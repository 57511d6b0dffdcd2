"""The machine note and `docs/benchmarks.md`: generated sections between markers, the rest of
the page (hand-written findings) left as it is."""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

from bench.procs import REPO_ROOT

DOCS_PATH = REPO_ROOT / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Run them with `make bench` (= `.venv/bin/python -m bench`: the gateway benchmark, ~90 s) and
`.venv/bin/python -m bench choices` (the measured design choices, ~100 s; run again when a
dependency changes); `python -m bench all` runs both, `python -m bench profile [--stream]`
samples the gateway under load with py-spy. `python -m bench --help` lists the knobs (rounds,
seconds, `--server granian`, `--load-client aiohttp` to skip wrk, `--no-docs`). Load comes from
`wrk` when it is installed (`apt-get install wrk`), else from `bench.client` (aiohttp) in its
own process, which saturates far below the fake upstream: compare ratios only within one load
generator. Sections between `bench:` markers are rewritten by those commands; the rest of this
page is written by hand.
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_note(load_tool: str) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    today = datetime.date.today().isoformat()
    return (
        f"Machine: `nproc` = {cores}, {cpu_model()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load generator: {load_tool}; "
        f"run on {today}. All traffic is loopback; the load generator, the fake upstream and "
        "the gateway share these cores (shared with other work), so absolute numbers move "
        "between runs: quote the medians and the ratios."
    )


def update_section(name: str, body: str, path: Path = DOCS_PATH) -> Path:
    """Replace the `bench:<name>` section of the page (append it when missing)."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
