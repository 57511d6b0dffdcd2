"""Where the gateway's CPU goes under load: py-spy samples the gateway process while the load
generator drives it at c=32. `python -m bench profile` (needs `pip install py-spy`)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.loadgen import run_load
from bench.procs import VENV_BIN
from bench.servers import request_body, stack

PACKAGES = (
    ("opsgate", "opsgate (gateway code)"),
    ("starlette", "starlette"),
    ("uvicorn", "uvicorn (server protocol)"),
    ("httptools", "uvicorn (server protocol)"),
    ("aiohttp", "aiohttp (upstream client)"),
    ("yarl", "aiohttp (upstream client)"),
    ("multidict", "aiohttp (upstream client)"),
    ("pydantic", "pydantic"),
    ("orjson", "json"),
    ("json", "json"),
    ("asyncio", "asyncio"),
    ("uvloop", "asyncio"),
    ("contextlib", "stdlib other"),
    ("typing", "stdlib other"),
)


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    by_package: list[tuple[str, int]]
    self_top: list[tuple[str, int]]
    inclusive_top: list[tuple[str, int]]
    raw_path: Path
    rps: float


def py_spy() -> str | None:
    local = VENV_BIN / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def package_of(frame: str) -> str:
    location = frame[frame.rfind("(") + 1 :] if "(" in frame else frame
    for needle, name in PACKAGES:
        if f"{needle}/" in location or f"{needle}." in location:
            return name
    return "other"


def _is_gateway_code(frame: str) -> bool:
    """opsgate's own request-path frames (not the CLI start-up chain every sample shares)."""
    return "opsgate/" in frame and "opsgate/cli/main.py" not in frame


def summarise(raw: str) -> tuple[int, Counter[str], Counter[str], Counter[str]]:
    """Collapsed stacks (`a;b;c count`) -> total, self by package, self and inclusive by frame."""
    total = 0
    by_package: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in raw.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack_text.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        self_time[leaf] += count
        by_package[package_of(leaf)] += count
        for frame in set(frames):
            inclusive[frame] += count
    return total, by_package, self_time, inclusive


def run_profile(
    out_dir: Path, seconds: int = 8, concurrency: int = 32, rate: int = 250, stream: bool = False
) -> Profile:
    spy = py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_path = out_dir / f"gateway-c{concurrency}-{'stream' if stream else 'json'}.txt"
    body = request_body(stream=stream)
    with stack("uvicorn") as servers:
        run_load(servers.gateway_url, body, concurrency, 1)  # warm-up
        argv = [
            spy,
            "record",
            "--pid",
            str(servers.gateway.pid),
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nolineno",
            "--nonblocking",
            "-o",
            str(raw_path),
        ]
        recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(0.3)
            load = run_load(servers.gateway_url, body, concurrency, seconds)
            _, err = recorder.communicate(timeout=seconds + 30)
        finally:
            if recorder.poll() is None:
                recorder.kill()
                recorder.wait()
        if recorder.returncode != 0 or not raw_path.exists():
            raise RuntimeError(f"py-spy failed ({recorder.returncode}): {err.decode()[-1000:]}")
    total, by_package, self_time, inclusive = summarise(raw_path.read_text())
    return Profile(
        total,
        by_package.most_common(),
        self_time.most_common(15),
        [(f, n) for f, n in inclusive.most_common() if _is_gateway_code(f)][:20],
        raw_path,
        load.rps,
    )


def print_profile(profile: Profile, console: Console) -> None:
    def pct(n: int) -> str:
        return f"{100 * n / profile.samples:.1f}%" if profile.samples else "-"

    console.print(
        f"{profile.samples} samples of the gateway at {profile.rps:,.0f} req/s; "
        f"raw stacks: {profile.raw_path}",
        highlight=False,
    )
    for title, rows in (
        ("Self time by package (leaf frame)", profile.by_package),
        ("Top self time by function", profile.self_top),
        ("Inclusive time in opsgate code (incl. what it awaits)", profile.inclusive_top),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column("where")
        table.add_column("share", justify="right")
        for name, count in rows:
            table.add_row(name, pct(count))
        console.print(table)
