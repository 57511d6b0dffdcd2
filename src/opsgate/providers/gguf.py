"""What a GGUF file says about itself, read from its header without llama.cpp: the format
version, the `general.*` metadata (name, architecture, size label) and the quantisation
(`general.file_type`, llama.cpp's `llama_ftype`), with the file name as the fallback.

Reading stops once those keys are found, after `MAX_KEYS` metadata pairs or `MAX_BYTES`, so a
large tokenizer vocabulary or a broken file costs little. The dashboard's Models page shows
this for local (`llamacpp`) deployments.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"GGUF"
MAX_KEYS = 256
MAX_BYTES = 64 * 1024 * 1024
WANTED = ("general.name", "general.architecture", "general.size_label", "general.file_type")

FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE",
}  # fmt: skip
"""llama.cpp's `llama_ftype` (include/llama.h): the type most tensors are stored in."""

_NAME_QUANT = re.compile(
    r"(?<![A-Za-z0-9])(I?Q\d_[A-Z0-9]+(?:_[A-Z]+)?|BF16|F16|F32)(?![A-Za-z0-9])", re.I
)
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    """The header cannot be read (not GGUF, an unknown version, cut short)."""


@dataclass(frozen=True, slots=True)
class GGUFInfo:
    version: int
    name: str | None
    architecture: str | None
    size_label: str | None
    file_type: int | None
    """`general.file_type`, None when the header does not say."""

    @property
    def quantisation(self) -> str | None:
        if self.file_type is None:
            return None
        return FILE_TYPES.get(self.file_type, f"type {self.file_type}")


def quantisation_from_name(path: str | Path) -> str | None:
    """`Q4_1` from `SmolLM2-135M-Instruct.Q4_1.gguf`, `Q4_K_M` from `x-q4_k_m.gguf`."""
    found = _NAME_QUANT.search(Path(path).stem)
    return found.group(1).upper() if found else None


class _Reader:
    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.read_bytes = 0

    def take(self, n: int) -> bytes:
        if self.read_bytes + n > MAX_BYTES:
            raise GGUFError(f"the metadata runs past {MAX_BYTES} bytes")
        data = self.fh.read(n)
        if len(data) != n:
            raise GGUFError("the header is cut short")
        self.read_bytes += n
        return data

    def unpack(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def string(self) -> str:
        return self.take(int(self.unpack("Q"))).decode("utf-8", "replace")

    def value(self, kind: int) -> object:
        if kind in _FIXED:
            return self.unpack(_FIXED[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            inner, count = int(self.unpack("I")), int(self.unpack("Q"))
            for _ in range(count):  # skipped, not kept: a vocabulary holds ~50k strings
                self.value(inner)
            return None
        raise GGUFError(f"unknown metadata value type {kind}")


def read_gguf(path: str | Path) -> GGUFInfo:
    """The header's `general.*` facts; GGUFError when it cannot be read (v1 files included)."""
    with Path(path).expanduser().open("rb") as fh:
        reader = _Reader(fh)
        if reader.take(4) != MAGIC:
            raise GGUFError("the file does not start with 'GGUF'")
        version = int(reader.unpack("I"))
        if version < 2:
            raise GGUFError(f"GGUF version {version} is not read here (2 and later are)")
        reader.unpack("Q")  # tensor count
        pairs = int(reader.unpack("Q"))
        found: dict[str, object] = {}
        for _ in range(min(pairs, MAX_KEYS)):
            key = reader.string()
            value = reader.value(int(reader.unpack("I")))
            if key in WANTED:
                found[key] = value
                if len(found) == len(WANTED):
                    break
    file_type = found.get("general.file_type")
    return GGUFInfo(
        version=version,
        name=_text(found.get("general.name")),
        architecture=_text(found.get("general.architecture")),
        size_label=_text(found.get("general.size_label")),
        file_type=file_type if isinstance(file_type, int) else None,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
