"""The `onnx` embedder: the exported MiniLM in ONNX Runtime, fp32 or int8, no torch.

The folder comes from `opsgate models quantize` (model.onnx, model.int8.onnx, tokenizer.json);
the graph already pools and normalises. Needs `onnxruntime` and `tokenizers`. One intra-op
thread, in a worker thread off the event loop, as for the local embedder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from opsgate.cache.embed.base import Vectors, normalise_rows
from opsgate.cache.embed.export import FP32_FILE, INPUTS, INT8_FILE, default_onnx_dir
from opsgate.cache.embed.local import EmbedderUnavailableError

MAX_TOKENS = 256
"""MiniLM's `max_seq_length` in sentence-transformers: longer text is cut, as there."""


class OnnxEmbedder:
    dim = 384

    def __init__(
        self, folder: str | Path | None = None, *, quantized: bool = True, threads: int = 1
    ) -> None:
        try:
            import onnxruntime as ort  # type: ignore[import-untyped,unused-ignore]
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderUnavailableError(
                "the onnx embedder needs onnxruntime and tokenizers: pip install 'opsgate[embed]'"
            ) from exc
        root = Path(folder) if folder else default_onnx_dir()
        file = root / (INT8_FILE if quantized else FP32_FILE)
        if not file.exists():
            raise EmbedderUnavailableError(
                f"{file} is missing: run `opsgate models quantize` to export the model"
            )
        self.tokenizer: Any = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session: Any = ort.InferenceSession(
            str(file), options, providers=["CPUExecutionProvider"]
        )
        self.quantized = quantized
        self.name = f"onnx:all-MiniLM-L6-v2:{'int8' if quantized else 'fp32'}"
        self.default_threshold = 0.95 if quantized else 0.955

    def embed_now(self, texts: Sequence[str]) -> Vectors:
        batch = self.tokenizer.encode_batch(list(texts))
        feeds = {
            "input_ids": np.asarray([e.ids for e in batch], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in batch], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in batch], dtype=np.int64),
        }
        (rows,) = self.session.run(None, {name: feeds[name] for name in INPUTS})
        return normalise_rows(np.asarray(rows, dtype=np.float32))

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await asyncio.to_thread(self.embed_now, texts)

    async def aclose(self) -> None:
        return None
