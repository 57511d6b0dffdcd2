"""Every fenced example of README.md runs as pasted, so the README cannot drift from the code.

- `bash` blocks run with `bash -e -o pipefail` and `python` blocks with this interpreter, in an
  empty folder holding `.venv` (this virtualenv), while a fresh `opsgate serve` (no config, no
  keys: what `make serve` starts) listens where the README says the quick-start gateway is. A
  gateway an example starts in the background is stopped with the example's process group.
- `yaml` blocks made of gateway config sections are checked with `opsgate config check`, as a
  user would; other YAML (an eval file, say) must at least parse.
- The README's ports (8080-8099) become free loopback ports, the same in every line of a block;
  where the CLI and `serve` default to 8080, `OPSGATE_URL` and `OPSGATE_PORT` point them at the
  quick-start gateway's port. Nothing else is rewritten.
- A block that cannot run here says why in a marker comment right above it:
  `<!-- example: skip: REASON -->`. A marker without a reason, or not above a block, fails.

Each example also leaves the quick-start gateway as it found it: still open, keyless calls work.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from markdown_it import MarkdownIt

from opsgate.config import Config
from tests.fixtures.needs import need
from tests.fixtures.upstream import unused_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKER = re.compile(r"<!--\s*example:\s*skip:(?P<reason>.*?)-->", re.S)
RUNNERS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "yaml": "yaml"}
QUICK_START_PORT = "8080"
PORT = re.compile(r"(?<!\d)80[89]\d(?!\d)")
RUN_TIMEOUT = 240.0
"""Seconds one example may take (a few on a quiet machine; up to a minute on a busy 2-core one);
the test's own limit (pytest-timeout) is raised to match."""


@dataclass(frozen=True, slots=True)
class Example:
    line: int
    lang: str
    code: str
    skip: str | None
    """Why it does not run, from its marker comment."""

    @property
    def name(self) -> str:
        return f"README.md:{self.line}-{self.lang}"


def parse(text: str) -> tuple[list[Example], list[str]]:
    """The fenced blocks, and the problems with the markers (stray, or without a reason)."""
    tokens = MarkdownIt("commonmark").parse(text)
    found: list[Example] = []
    problems: list[str] = []
    for i, token in enumerate(tokens):
        marker = MARKER.search(token.content) if token.type == "html_block" else None
        line = (token.map or [0])[0] + 1
        if marker is not None:
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if following is None or following.type != "fence":
                problems.append(f"line {line}: a skip marker that is not right above a block")
            if not marker.group("reason").strip():
                problems.append(f"line {line}: a skip marker without a reason")
        if token.type == "fence":
            before = tokens[i - 1] if i else None
            reason = None
            if before is not None and before.type == "html_block":
                match = MARKER.search(before.content)
                reason = match.group("reason").strip() if match else None
            lang = token.info.strip().split(" ")[0]
            found.append(Example(line, lang, token.content, reason))
    return found, problems


EXAMPLES, MARKER_PROBLEMS = parse(README.read_text(encoding="utf-8"))


def test_every_block_runs_or_says_why_not() -> None:
    assert MARKER_PROBLEMS == []
    unknown = [e.name for e in EXAMPLES if e.lang not in RUNNERS and e.skip is None]
    assert unknown == [], "a block in a language the checker does not run needs a skip marker"
    assert sum(e.skip is None for e in EXAMPLES) >= 3


def test_the_checker_reads_markers_and_refuses_bad_ones() -> None:
    text = (
        "<!-- example: skip: needs a GPU -->\n```bash\nnvidia-smi\n```\n\n"
        "<!-- example: skip: -->\n```text\nx\n```\n\n"
        "<!-- example: skip: lost -->\n\nprose\n\n```python\nprint(1)\n```\n"
    )
    examples, problems = parse(text)
    assert [(e.lang, e.skip) for e in examples] == [
        ("bash", "needs a GPU"),
        ("text", ""),
        ("python", None),
    ]
    assert problems == [
        "line 6: a skip marker without a reason",
        "line 11: a skip marker that is not right above a block",
    ]


class Sandbox:
    """An empty folder with `.venv`, loopback ports for the README's, and a fresh gateway."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        self.env = {k: v for k, v in os.environ.items() if not self._private(k)}
        self.env["COLUMNS"] = "120"
        self.ports: dict[str, str] = {}
        # Where the CLI and `serve` default to port 8080, they find the quick-start gateway.
        self.env["OPSGATE_URL"] = self.quick_start
        self.env["OPSGATE_PORT"] = self.port(QUICK_START_PORT)
        self.gateway: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _private(name: str) -> bool:
        """Settings of the test run that would change what an example sees."""
        return name.startswith(("OPSGATE_", "OTEL_", "PROMETHEUS_")) or name in (
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "OLLAMA_BASE_URL",
            "VLLM_BASE_URL",
        )

    def port(self, readme_port: str) -> str:
        return self.ports.setdefault(readme_port, str(unused_port()))

    def localise(self, code: str) -> str:
        return PORT.sub(lambda m: self.port(m.group(0)), code)

    @property
    def quick_start(self) -> str:
        return f"http://127.0.0.1:{self.port(QUICK_START_PORT)}"

    def start_gateway(self) -> None:
        """`opsgate serve` as `make serve` runs it: no config, no keys, its own database."""
        command = [str(self.folder / ".venv/bin/opsgate"), "serve"]
        with (self.folder / "quick-start.log").open("wb") as log:  # the child keeps its copy
            self.gateway = subprocess.Popen(
                [*command, "--port", self.port(QUICK_START_PORT)],
                cwd=self.folder / "quick-start",
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not self._ready():
            assert self.gateway.poll() is None, self.log("quick-start.log")
            assert time.monotonic() < deadline, "the quick-start gateway did not become ready"
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.quick_start}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def log(self, name: str) -> str:
        return (self.folder / name).read_text(errors="replace")

    def run(self, example: Example) -> str | None:
        """Run one block in its own process group (bounded); None, or what went wrong."""
        code = self.localise(example.code)
        script = self.folder / ("example.py" if example.lang == "python" else "example.sh")
        script.write_text(code)
        if example.lang == "python":
            argv = [sys.executable, str(script)]
        else:
            argv = ["bash", "-e", "-o", "pipefail", str(script)]
        with (self.folder / "example.log").open("wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                return f"still running after {RUN_TIMEOUT:g} s:\n{self.log('example.log')}"
            finally:
                stop_group(proc)
        if proc.returncode != 0:
            return f"exit status {proc.returncode}:\n{self.log('example.log')}"
        return None

    def close(self) -> None:
        if self.gateway is not None:
            stop_group(self.gateway)


def stop_group(leader: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group `leader` started (a gateway an example started with `&` is in
    it), SIGKILL after 30 s; the leader is reaped, so a zombie does not count as running."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(leader.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            leader.poll()
            try:
                os.killpg(leader.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    (tmp_path / "quick-start").mkdir()
    box = Sandbox(tmp_path)
    try:
        yield box
    finally:
        box.close()


RUNNABLE = [e for e in EXAMPLES if e.skip is None and e.lang in RUNNERS]


def check_yaml(example: Example, sandbox: Sandbox) -> None:
    sections = set(re.findall(r"^([A-Za-z_]\w*):", example.code, flags=re.M))
    if not sections <= set(Config.model_fields):
        assert isinstance(yaml.safe_load(example.code), dict | list), example.name
        return  # not a gateway config (an eval file, say): that it parses is all we can say
    path = sandbox.folder / "opsgate.yaml"
    path.write_text(sandbox.localise(example.code))
    env = {**sandbox.env, "OPENAI_API_KEY": "sk-readme", "ANTHROPIC_API_KEY": "sk-readme"}
    checked = subprocess.run(
        [str(sandbox.folder / ".venv/bin/opsgate"), "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.timeout(RUN_TIMEOUT + 120)  # + the quick-start gateway's start and stop
@pytest.mark.parametrize("example", RUNNABLE, ids=lambda e: e.name)
def test_example_runs_as_pasted(example: Example, sandbox: Sandbox) -> None:
    if RUNNERS[example.lang] == "yaml":
        check_yaml(example, sandbox)
        return
    if "curl " in example.code:
        need(shutil.which("curl") is not None, "curl is not installed")
    sandbox.start_gateway()
    failure = sandbox.run(example)
    assert failure is None, f"{example.name}: {failure}"
    still_open = httpx.post(
        f"{sandbox.quick_start}/v1/chat/completions",
        json={"model": "chat-default", "messages": [{"role": "user", "content": "still open?"}]},
        timeout=30,
    )
    assert still_open.status_code == 200, f"after {example.name}: {still_open.text}"
