"""Requantise a GGUF model into other llama.cpp quantisations (`opsgate local quantize`).

llama.cpp quantises from F16/F32 weights; given an already quantised file it can only
*requantise* (`allow_requantize`): each tensor is dequantised and quantised again. That is what
is possible with the one GGUF a user has on disk (the `local` extra ships SmolLM2-135M as
Q4_1), and it is honest only one way: a lower type is measured against the file it came from,
while a higher type (Q8_0, F16) cannot win back the precision Q4_1 already lost; it keeps
Q4_1's quality and shows what the bigger format costs in size and speed.

Needs llama-cpp-python (the `local` extra), imported on first use so the CLI starts without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsgate.providers.llamacpp import gguf_problem

KINDS: tuple[str, ...] = (
    "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0",
    "IQ4_NL", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K",
)  # fmt: skip
"""Target types, largest first: llama.cpp's `LLAMA_FTYPE_MOSTLY_<kind>` that need no
importance matrix (IQ2/IQ1 types do, and are left out)."""

GGML_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K",
    11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 20: "IQ4_NL", 23: "IQ4_XS", 30: "BF16",
}  # fmt: skip
"""ggml's tensor types (ggml.h `ggml_type`) that the kinds above produce."""
_MAX_ENTRIES = 1_000_000  # metadata pairs or tensors: beyond this the header is not believed


class QuantizeError(ValueError):
    """The request cannot be done (unknown type, not a GGUF file, llama.cpp refused)."""


@dataclass(frozen=True, slots=True)
class Quantized:
    kind: str
    path: Path
    size: int
    """File size in bytes."""
    seconds: float
    reused: bool = False
    """True when the file was already there (and `overwrite` was not asked for)."""


def parse_kinds(text: str | Sequence[str]) -> list[str]:
    """`"q8_0, Q4_0"` -> `["Q8_0", "Q4_0"]`; unknown names are refused with the known list."""
    items = text.split(",") if isinstance(text, str) else list(text)
    kinds = [k.strip().upper() for k in items if k.strip()]
    if unknown := [k for k in kinds if k not in KINDS]:
        raise QuantizeError(
            f"unknown quantisation {', '.join(unknown)}; choose from {', '.join(KINDS)}"
        )
    if not kinds:
        raise QuantizeError(f"no quantisation given; choose from {', '.join(KINDS)}")
    return list(dict.fromkeys(kinds))


def output_path(source: Path, folder: Path, kind: str) -> Path:
    """`SmolLM2-135M-Instruct.Q4_1.gguf` -> `<folder>/SmolLM2-135M-Instruct.Q8_0.gguf`."""
    stem = source.stem
    if info_kind := _kind_in_name(stem):
        stem = stem[: -len(info_kind)].rstrip("._-")
    return folder / f"{stem}.{kind}.gguf"


def _kind_in_name(stem: str) -> str | None:
    upper = stem.upper()
    return next((k for k in sorted(KINDS, key=len, reverse=True) if upper.endswith(k)), None)


def quantize(
    source: str | Path,
    folder: str | Path,
    kinds: Sequence[str],
    *,
    threads: int | None = None,
    overwrite: bool = False,
    budget_s: float = 900.0,
) -> list[Quantized]:
    """Write `source` requantised to each of `kinds` into `folder`, one file per type.

    Files already there are reused unless `overwrite`; types left when `budget_s` is spent are
    not started (each llama.cpp call itself runs to its end: seconds for a small model)."""
    src = Path(source).expanduser()
    kinds = parse_kinds(kinds)
    if (problem := gguf_problem(str(src))) is not None:
        raise QuantizeError(problem.removeprefix("options.model_path: "))
    try:
        import llama_cpp  # the optional `local` extra
    except ImportError:
        raise QuantizeError(
            "llama-cpp-python is not installed: pip install 'opsgate[local]'"
        ) from None

    out = Path(folder).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # no per-tensor log lines
    deadline = time.monotonic() + budget_s
    done: list[Quantized] = []
    for kind in kinds:
        target = output_path(src, out, kind)
        if target.resolve() == src.resolve():
            raise QuantizeError(f"{target} is the source file; choose another folder")
        if target.is_file() and not overwrite:
            done.append(Quantized(kind, target, target.stat().st_size, 0.0, reused=True))
            continue
        if time.monotonic() > deadline:
            raise QuantizeError(
                f"time budget of {budget_s:g}s spent before {kind}; done: "
                + (", ".join(q.kind for q in done) or "none")
            )
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
        params.allow_requantize = True  # a no-op for F16/F32 tensors
        params.nthread = threads or 0
        partial = target.with_suffix(".gguf.part")
        started = time.monotonic()
        with tempfile.TemporaryFile() as log, _stderr_to(log):
            status = llama_cpp.llama_model_quantize(
                str(src).encode(), str(partial).encode(), params
            )
            log.seek(0)
            said = log.read()[-1000:].decode(errors="replace").strip()
        if status != 0:
            partial.unlink(missing_ok=True)
            raise QuantizeError(
                f"llama.cpp could not quantise {src.name} to {kind} ({status}): {said}"
            )
        partial.replace(target)
        done.append(Quantized(kind, target, target.stat().st_size, time.monotonic() - started))
    return done


def tensor_types(path: str | Path) -> dict[str, int]:
    """Parameters per ggml tensor type, from the GGUF header: what a file really stores. A
    K-quant needs rows whose length is a multiple of 256; llama.cpp quantises other tensors to
    a fallback type (SmolLM2's 576-wide rows: most of them), so the name can mislead."""
    with Path(path).expanduser().open("rb") as fh:

        def take(fmt: str) -> Any:
            data = fh.read(struct.calcsize(fmt))
            if len(data) != struct.calcsize(fmt):
                raise QuantizeError(f"{path}: the GGUF header is cut short")
            return struct.unpack("<" + fmt, data)[0]

        def count() -> int:
            n: int = take("Q")
            if n > _MAX_ENTRIES:
                raise QuantizeError(f"{path}: implausible GGUF header ({n} entries)")
            return n

        def skip(kind: int) -> None:
            sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
            if kind == 8:  # string
                fh.seek(take("Q"), 1)
            elif kind == 9:  # array
                inner, n = take("I"), count()
                if inner in sizes:
                    fh.seek(sizes[inner] * n, 1)
                else:
                    for _ in range(n):
                        skip(inner)
            elif kind in sizes:
                fh.seek(sizes[kind], 1)
            else:
                raise QuantizeError(f"{path}: unknown GGUF metadata type {kind}")

        if fh.read(4) != b"GGUF":
            raise QuantizeError(f"{path} is not a GGUF file")
        take("I")  # version
        tensors, pairs = count(), count()
        for _ in range(pairs):
            fh.seek(take("Q"), 1)  # the key
            skip(take("I"))
        counts: dict[str, int] = {}
        for _ in range(tensors):
            fh.seek(take("Q"), 1)  # the name
            n = 1
            for _ in range(take("I")):
                n *= take("Q")
            name = GGML_TYPES.get(take("I"), "other")
            take("Q")  # offset
            counts[name] = counts.get(name, 0) + n
    return counts


def stored_as(counts: dict[str, int]) -> str:
    """`Q4_0 77%, Q2_K 23%`: the share of the 2-D weights per type (1-D norms stay F32)."""
    weights = {k: n for k, n in counts.items() if k != "F32"}
    total = sum(weights.values()) or 1
    top = sorted(weights.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {n / total:.0%}" for k, n in top if n / total >= 0.005)


@contextlib.contextmanager
def _stderr_to(sink: Any) -> Iterator[None]:
    """llama.cpp writes a line per fallback tensor to fd 2: keep them for an error message."""
    saved = os.dup(2)
    try:
        os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
