"""Subprocess servers on free loopback ports, always cleaned up."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"
VENV_BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port the OS says is free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without OPSGATE_* and provider keys, `bench` importable, plus `extra`."""
    drop = ("OPSGATE_", "OPENAI_", "ANTHROPIC_", "OLLAMA_", "VLLM_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


class ServerError(RuntimeError):
    """A server did not come up; the message carries its log tail."""


class Server:
    """A server subprocess in its own session (so its workers die with it)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        proc: subprocess.Popen[bytes],
        log_path: Path,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.proc = proc
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        """Poll GET `path` until it answers 2xx; raise with the log if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + path, timeout=1.0) as resp:
                    if 200 <= resp.status < 300:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise ServerError(f"{self.name} not ready after {timeout:g}s:\n{self.log_tail()}")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        # Workers (granian) may outlive the leader: sweep the whole group either way.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)


@contextlib.contextmanager
def serve(
    name: str,
    argv: Sequence[str],
    port: int,
    ready_path: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ready_timeout: float = 30.0,
) -> Iterator[Server]:
    """Start `argv` (which must listen on `port`), wait for `ready_path`, stop it on exit."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else clean_env(),
                cwd=cwd or tmp,
                start_new_session=True,
            )
        server = Server(name, argv, port, proc, log_path)
        try:
            server.wait_ready(ready_path, ready_timeout)
            yield server
        finally:
            server.stop()


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in a process group (from /proc)."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # pgrp; utime and stime follow at 11 and 12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
