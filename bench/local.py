"""`python -m bench local`: the local model (SmolLM2-135M-Instruct Q4_1, llama.cpp on CPU),
direct through llama-cpp-python vs through the gateway (`provider: llamacpp`).

At concurrency c, c requests run at once, each asking for `TOKENS` tokens with the end-of-turn
tokens banned (so every answer has the same length), streamed. Direct: c threads, each with its
own `Llama` instance, as the provider runs them. Gateway: `opsgate serve` with the same model,
`concurrency: c` and the same llama.cpp threads per instance, loaded by c HTTP streams. Both
are loaded and warmed up together and their rounds alternate (direct, gateway, direct, ...), so
the load other work puts on the shared box falls on both alike.
Reported per round: aggregate completion tokens/s (all tokens over the round's wall time) and
the median time to the first content token; the table gives the medians over the rounds and
the gateway's share of the time (1 - gateway tokens/s over direct tokens/s).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console

from bench.procs import free_port, serve
from bench.report import Grid, grids_markdown
from bench.stats import median
from opsgate.config.defaults import bundled_gguf

Progress = Callable[[str], None]
TOKENS = 64
NEVER_STOP = {"2": -100.0, "0": -100.0}  # SmolLM2's <|im_end|> and <|endoftext|>
MESSAGES = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
LEVELS = (1, 4)
VENV_BIN = Path(sys.executable).parent


def threads_for(concurrency: int) -> int:
    """llama.cpp threads per instance: one, whatever the concurrency. Sharing the cores out
    (2 for c=1) is slower here: on a shared box a second OpenMP thread spins at barriers while
    another process holds a core, and generation fell from ~20 to ~2 tokens/s (measured with
    OMP_WAIT_POLICY unset; PASSIVE restores it, docs/local-models.md)."""
    return 1


@dataclass(slots=True)
class Round:
    tokens: int
    seconds: float
    ttft: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def _parallel(concurrency: int, one: Callable[[int], tuple[int, float]]) -> Round:
    """Run `one(i)` in c threads at once; each returns (tokens, seconds to first token)."""
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        got = one(i)
        with lock:
            results.append(got)

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    seconds = time.perf_counter() - started
    return Round(sum(r[0] for r in results), seconds, [r[1] for r in results])


One = Callable[[int], tuple[int, float]]
"""One request on instance/stream i: (completion tokens, seconds to the first token)."""


@contextlib.contextmanager
def direct_requests(gguf: str, concurrency: int) -> Iterator[One]:
    """c `Llama` instances in this process, each warmed up (the first call pays the graph
    allocation), as the provider runs them."""
    from llama_cpp import Llama

    n_threads = threads_for(concurrency)
    models = [
        Llama(
            model_path=gguf,
            n_ctx=1024,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
        for _ in range(concurrency)
    ]
    bias = {int(k): v for k, v in NEVER_STOP.items()}

    def one(i: int) -> tuple[int, float]:
        started = time.perf_counter()
        first = 0.0
        for chunk in models[i].create_chat_completion(
            messages=MESSAGES,
            max_tokens=TOKENS,
            logit_bias=bias,
            stream=True,
        ):
            if chunk["choices"][0]["delta"].get("content"):
                first = first or time.perf_counter() - started
        return TOKENS, first  # end-of-turn banned: every answer runs to max_tokens

    try:
        _parallel(concurrency, one)
        yield one
    finally:
        for m in models:
            m.close()


@contextlib.contextmanager
def local_gateway(gguf: str, concurrency: int) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        config = Path(tmp) / "opsgate.yaml"
        options = {
            "model_path": gguf,
            "n_ctx": 1024,
            "n_threads": threads_for(concurrency),
            "concurrency": concurrency,
        }
        models = [
            {
                "name": "local-small",
                "deployments": [
                    {"provider": "llamacpp", "model": "smollm2", "timeout": 300, "options": options}
                ],
            }
        ]
        data = {"models": models, "cache": {"enabled": False}}
        config.write_text(orjson.dumps(data).decode())  # JSON is YAML
        port = free_port()
        argv = [str(VENV_BIN / "opsgate"), "serve", "--config", str(config), "--port", str(port)]
        argv += ["--log-level", "warning"]
        with serve("gateway-local", argv, port, "/healthz") as gw:
            yield gw.url


@contextlib.contextmanager
def gateway_requests(gguf: str, concurrency: int) -> Iterator[One]:
    """`opsgate serve` with the model at `concurrency: c`, every instance warmed up (c requests
    at once: one after another would all land on the pool's first thread)."""
    body = {
        "model": "local-small",
        "messages": MESSAGES,
        "max_tokens": TOKENS,
        "logit_bias": NEVER_STOP,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with local_gateway(gguf, concurrency) as url, httpx.Client(timeout=300) as http:

        def one(i: int) -> tuple[int, float]:
            started = time.perf_counter()
            first = 0.0
            finish = None
            with http.stream("POST", f"{url}/v1/chat/completions", json=body) as resp:
                resp.raise_for_status()
                for line in resp.iter_lines():
                    if not line.startswith("data: {"):
                        continue
                    for choice in orjson.loads(line[6:]).get("choices") or ():
                        if choice["delta"].get("content"):
                            first = first or time.perf_counter() - started
                        finish = choice.get("finish_reason") or finish
            if finish != "length":
                raise RuntimeError(f"local bench: the gateway's answer ended with {finish}")
            return TOKENS, first

        _parallel(concurrency, one)
        yield one


@dataclass(slots=True)
class LocalRun:
    rounds: int
    direct: dict[int, list[Round]] = field(default_factory=dict)
    gateway: dict[int, list[Round]] = field(default_factory=dict)


def run_local(rounds: int, progress: Progress) -> LocalRun:
    gguf = bundled_gguf()
    if gguf is None:
        raise SystemExit("the local extra is not installed: make local")
    run = LocalRun(rounds)
    for c in LEVELS:
        progress(f"c={c}: direct llama-cpp-python and the gateway, rounds interleaved")
        with direct_requests(gguf, c) as direct, gateway_requests(gguf, c) as gateway:
            run.direct[c], run.gateway[c] = [], []
            for _ in range(rounds):
                run.direct[c].append(_parallel(c, direct))
                run.gateway[c].append(_parallel(c, gateway))
    return run


def local_grids(run: LocalRun) -> list[Grid]:
    grid = Grid(
        f"SmolLM2-135M Q4_1, {TOKENS}-token streamed answers, medians of {run.rounds} rounds",
        (
            "concurrency",
            "threads/instance",
            "direct tok/s",
            "gateway tok/s",
            "gateway share",
            "direct TTFT ms",
            "gateway TTFT ms",
        ),
    )
    for c in LEVELS:
        d = median([r.rate for r in run.direct[c]])
        g = median([r.rate for r in run.gateway[c]])
        dt = median([t for r in run.direct[c] for t in r.ttft]) * 1000
        gt = median([t for r in run.gateway[c] for t in r.ttft]) * 1000
        grid.rows.append(
            (
                str(c),
                str(threads_for(c)),
                f"{d:.1f}",
                f"{g:.1f}",
                f"{1 - g / d:.1%}",
                f"{dt:.0f}",
                f"{gt:.0f}",
            )
        )
    grid.notes.append(
        "gateway share = 1 - gateway tok/s / direct tok/s; the load generator, the gateway and "
        "llama.cpp share the same 2 cores"
    )
    return [grid]


def main_local(args: Any, note: str, console: Console, progress: Progress) -> None:
    from bench.docs import update_section

    grids = local_grids(run_local(max(1, args.rounds), progress))
    for grid in grids:
        grid.rich(console)
    if not args.no_docs:
        body = "\n".join(
            ["## Local model (`python -m bench local`)", "", note, "", __doc__.split("\n\n", 1)[1],
             *grids_markdown(grids)]
        )  # fmt: skip
        update_section("local", body)
