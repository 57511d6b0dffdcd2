"""The servers a benchmark needs: the fake upstream and the gateway under a chosen ASGI server."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.procs import VENV_BIN, Server, ServerError, clean_env, free_port, serve

MODEL = "bench"
CHAT_PATH = "/v1/chat/completions"
ASGI_SERVERS = ("uvicorn", "granian")


def request_body(*, stream: bool = False) -> bytes:
    """A typical small chat request, the same bytes direct and through the gateway."""
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello in one short sentence."},
        ],
        "max_tokens": 32,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


@dataclass(frozen=True, slots=True)
class Stack:
    upstream: Server
    gateway: Server
    server: str
    bare: Server | None = None

    @property
    def direct_url(self) -> str:
        return self.upstream.url + CHAT_PATH

    @property
    def gateway_url(self) -> str:
        return self.gateway.url + CHAT_PATH

    @property
    def bare_url(self) -> str | None:
        return self.bare.url + CHAT_PATH if self.bare else None


@contextlib.contextmanager
def fake_upstream(delay_ms: float = 0.0) -> Iterator[Server]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
    if delay_ms:
        argv += ["--delay-ms", f"{delay_ms:g}"]
    with serve("upstream", argv, port, "/health") as upstream:
        yield upstream


@contextlib.contextmanager
def bare_proxy(upstream: Server) -> Iterator[Server]:
    """The bare Python forwarder (`bench.bareproxy`) in front of `upstream`."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.bareproxy",
        "--port",
        str(port),
        "--upstream",
        upstream.url,
    ]
    with serve("bare proxy", argv, port, "/healthz") as bare:
        yield bare


def _gateway_argv(server: str, config: Path, port: int, workers: int = 1) -> list[str]:
    if server == "uvicorn":
        opsgate = VENV_BIN / "opsgate"
        cmd = (
            [str(opsgate)]
            if opsgate.exists()
            else [sys.executable, "-c", "from opsgate.cli.main import main; main()"]
        )
        return [
            *cmd,
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--log-level",
            "warning",
            *(["--workers", str(workers)] if workers > 1 else []),
        ]
    if server == "granian":
        return [
            str(VENV_BIN / "granian"),
            "--interface",
            "asgi",
            "--factory",
            "--loop",
            "uvloop",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
            "opsgate.app:app_from_env",
        ]
    raise ValueError(f"unknown ASGI server {server!r}; expected one of {ASGI_SERVERS}")


@contextlib.contextmanager
def gateway(
    upstream: Server,
    server: str = "uvicorn",
    *,
    extra_config: str = "",
    name: str = "",
    env_extra: dict[str, str] | None = None,
    workers: int = 1,
) -> Iterator[Server]:
    """The gateway with one model `bench` -> the fake upstream, checked with one real request.

    `extra_config` is appended to the YAML (top-level keys such as `traces:`)."""
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        config = Path(tmp) / "opsgate.yaml"
        config.write_text(
            "models:\n"
            f"  - name: {MODEL}\n"
            "    deployments:\n"
            f"      - {{provider: openai, base_url: {upstream.url}/v1, model: fake, api_key: x}}\n"
            + extra_config
        )
        port = free_port()
        env = clean_env({"OPSGATE_CONFIG": str(config), **(env_extra or {})})
        argv = _gateway_argv(server, config, port, workers)
        label = f"gateway ({name or server})"
        # Workers import and start one after another; on a busy machine that takes a while.
        wait = 30.0 * workers
        with serve(label, argv, port, "/healthz", env=env, cwd=Path(tmp), ready_timeout=wait) as gw:
            _smoke(gw, (env_extra or {}).get("OPSGATE_MASTER_KEY"))
            yield gw


@contextlib.contextmanager
def stack(server: str = "uvicorn", *, with_bare: bool = False) -> Iterator[Stack]:
    with contextlib.ExitStack() as running:
        upstream = running.enter_context(fake_upstream())
        gw = running.enter_context(gateway(upstream, server))
        bare = running.enter_context(bare_proxy(upstream)) if with_bare else None
        yield Stack(upstream, gw, server, bare)


def _smoke(gw: Server, key: str | None = None) -> None:
    """One plain and one streamed request must succeed before any timing counts."""
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    for stream in (False, True):
        req = urllib.request.Request(
            gw.url + CHAT_PATH, data=request_body(stream=stream), headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                payload = resp.read()
        except OSError as exc:
            raise ServerError(f"{gw.name} failed a smoke request: {exc}\n{gw.log_tail()}") from exc
        expected = b"[DONE]" if stream else b'"chat.completion"'
        if expected not in payload:
            raise ServerError(f"{gw.name} answered oddly (stream={stream}): {payload[:300]!r}")
