"""One load run against one URL, from a separate process: `wrk` when installed, else
`bench.client` (aiohttp). Both report successful requests, errors, p50 and p99."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.procs import clean_env

MARK = "BENCH_JSON "
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "%s{\\"requests\\":%d,\\"errors\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d}\\n",
    "BENCH_JSON ", summary.requests - e.status, e.connect + e.read + e.write + e.status + e.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


def tool_name(client: str | None = None) -> str:
    """Which load generator `run_load` will use."""
    if client is None and wrk_path():
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        first = (version.stdout or version.stderr).split("[")[0].strip()
        return first or "wrk"
    return f"bench.client ({client or 'aiohttp'})"


def run_load(
    url: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    *,
    warmup: float = 0.0,
    client: str | None = None,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """POST `body` to `url` from `concurrency` connections for `seconds` after `warmup`.

    `client=None` means wrk if installed; "aiohttp" or "httpx" forces `bench.client`.
    """
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        if client is None and wrk_path():
            if warmup > 0:
                _wrk(url, body, concurrency, warmup, Path(tmp), headers)
            return _wrk(url, body, concurrency, seconds, Path(tmp), headers)
        if headers:
            raise ValueError("request headers need wrk (apt-get install wrk)")
        return _client(url, body, concurrency, seconds, warmup, client or "aiohttp", Path(tmp))


def _wrk(
    url: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    tmp: Path,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    script = tmp / "post.lua"
    extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        + extra
        + f"wrk.body = [==[{body.decode()}]==]\n"
        + WRK_DONE
    )
    whole = max(1, math.ceil(seconds))  # wrk takes whole seconds
    argv = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{whole}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    return _parse(_run(argv, whole), "wrk")


def _client(
    url: str, body: bytes, concurrency: int, seconds: float, warmup: float, client: str, tmp: Path
) -> LoadResult:
    body_file = tmp / "body.json"
    body_file.write_bytes(body)
    argv = [
        sys.executable,
        "-m",
        "bench.client",
        "--url",
        url,
        "--body-file",
        str(body_file),
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
        "--client",
        client,
    ]
    return _parse(_run(argv, seconds + warmup), "bench.client")


def _run(argv: list[str], seconds: float) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=False, env=clean_env()
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _parse(stdout: str, tool: str) -> LoadResult:
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARK) or ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{tool} printed no result:\n{stdout[-2000:]}")
    data = orjson.loads(lines[-1].removeprefix(MARK))
    return LoadResult(
        requests=int(data["requests"]),
        errors=int(data["errors"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
    )
