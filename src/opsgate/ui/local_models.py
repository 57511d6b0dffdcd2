"""What the Models page shows of a local (`llamacpp`) deployment: the GGUF file, its size on
disk, its quantisation (the file's header, else its name) and the concurrency limits.

The header is read once per file version (path, size, modification time), off the event loop.
A file that went missing or cannot be read is shown as such, never an error page: the gateway
checked it at config time, and the page is where an operator would notice it changed since.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from opsgate.config.schema import DeploymentConfig
from opsgate.providers.gguf import GGUFError, GGUFInfo, quantisation_from_name, read_gguf
from opsgate.providers.llamacpp import LlamaCppOptions

LOCAL_PROVIDERS = frozenset({"llamacpp"})


@dataclass(frozen=True, slots=True)
class LocalModel:
    path: str
    size_bytes: int | None
    """None when the file is not there (any more)."""
    quantisation: str | None
    quantisation_source: str
    """`header`, `file name` or `unknown`."""
    header: GGUFInfo | None
    problem: str | None
    """Why the file or its header could not be read."""
    concurrency: int
    max_waiting: int
    n_ctx: int


_cache: dict[tuple[str, int, int], tuple[GGUFInfo | None, str | None]] = {}


def _header(path: Path, size: int, mtime: int) -> tuple[GGUFInfo | None, str | None]:
    key = (str(path), size, mtime)
    if key not in _cache:
        if len(_cache) >= 64:  # files replaced over and over: start again
            _cache.clear()
        try:
            _cache[key] = (read_gguf(path), None)
        except (GGUFError, OSError) as exc:
            _cache[key] = (None, f"header not read: {exc}")
    return _cache[key]


def _inspect(options: LlamaCppOptions) -> LocalModel:
    path = Path(options.model_path).expanduser()
    header: GGUFInfo | None = None
    problem: str | None = None
    size: int | None = None
    try:
        stat = path.stat()
        size = stat.st_size
        header, problem = _header(path, stat.st_size, stat.st_mtime_ns)
    except OSError as exc:
        problem = f"file not readable: {exc.strerror}"
    quant, source = (
        (header.quantisation, "header") if header and header.quantisation else (None, "")
    )
    if quant is None:
        quant = quantisation_from_name(path)
        source = "file name" if quant else "unknown"
    return LocalModel(
        path=str(path),
        size_bytes=size,
        quantisation=quant,
        quantisation_source=source,
        header=header,
        problem=problem,
        concurrency=options.concurrency,
        max_waiting=options.max_waiting,
        n_ctx=options.n_ctx,
    )


async def local_model(deployment: DeploymentConfig) -> LocalModel | None:
    """The local model facts of a deployment; None for any other provider."""
    if deployment.provider not in LOCAL_PROVIDERS:
        return None
    try:
        options = LlamaCppOptions.model_validate(deployment.options)
    except ValidationError:  # config check refuses these; nothing to show
        return None
    return await asyncio.to_thread(_inspect, options)


def size_text(size: int | None) -> str:
    """`98.4 MB` (decimal units, as file managers and model cards give them)."""
    if size is None:
        return "\u2013"
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} B"
