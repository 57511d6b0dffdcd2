"""Drift sampling, off the request path: the publisher hands each finished trace to `observe`
(a draw and a bounded append, nothing else); a background task extracts the features, embeds
the configured share of prompts (float16) and writes them in batches.

A full queue drops the sample (counted in `opsgate_drift_samples{outcome="dropped"}`), never
the request. An embedder that cannot be built leaves its reason in `embedder_error` and the
samples are stored without vectors; input monitors then report `error` with that reason.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from opsgate.cache.embed import Embedder, EmbedderUnavailableError
from opsgate.config.drift import DriftConfig
from opsgate.drift.features import Features, features_of
from opsgate.drift.store import DriftStore
from opsgate.telemetry.drift_metrics import DriftMetrics
from opsgate.trace import TraceRecord

log = logging.getLogger("opsgate.drift")
BATCH = 256
EmbedderFactory = Callable[[], Embedder]


class DriftSampler:
    def __init__(
        self,
        config: Callable[[], DriftConfig],
        store: DriftStore,
        embedder: EmbedderFactory,
        *,
        metrics: DriftMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._factory = embedder
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._queue: collections.deque[TraceRecord] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._embedder: Embedder | None = None
        self.embedder_error: str | None = None
        self.embed_seconds = 0.0
        """Time spent embedding (the cost of drift sampling, also in Prometheus)."""

    def observe(self, trace: TraceRecord) -> None:
        """A trace observer: draw it, and queue it when drawn (never blocks, never raises)."""
        config = self._config()
        if not config.enabled or trace.endpoint != "chat" or trace.status != "ok":
            return
        if config.sample < 1.0 and self._rng.random() >= config.sample:
            return
        if len(self._queue) >= config.queue_size:
            self._count("dropped")
            return
        self._queue.append(trace)
        if len(self._queue) >= BATCH:
            self._wake.set()

    def _count(self, outcome: str, n: int = 1) -> None:
        if self._metrics is not None and n:
            self._metrics.samples.labels(outcome).inc(n)

    def embedder(self) -> Embedder:
        """The drift embedder, built on first use; `EmbedderUnavailableError` with the reason."""
        if self._embedder is None:
            try:
                self._embedder = self._factory()
            except EmbedderUnavailableError as exc:
                self.embedder_error = str(exc)
                raise
            except Exception as exc:  # a broken model folder, a missing file: say so
                self.embedder_error = f"{type(exc).__name__}: {exc}"
                raise EmbedderUnavailableError(self.embedder_error) from exc
            self.embedder_error = None
        return self._embedder

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="drift-sampler")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("drift samples could not be written; they are dropped")

    async def drain(self) -> None:
        """Write everything queued now (before an erasure, so no sample lands after it)."""
        await self.flush()

    async def flush(self) -> int:
        """Write everything queued now; how many samples were written."""
        written = 0
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            rows = await self._rows([features_of(t) for t in batch])
            await self._store.add_samples(rows)
            self._count("stored", len(rows))
            written += len(rows)
        return written

    async def _rows(self, found: list[Features]) -> list[dict[str, Any]]:
        share = self._config().embed_sample
        chosen = [f for f in found if f.text and self._rng.random() < share]
        vectors: dict[str, bytes] = {}
        name: str | None = None
        if chosen:
            try:
                embedder = await asyncio.to_thread(self.embedder)
            except EmbedderUnavailableError:
                embedder = None
            if embedder is not None:
                t0 = time.perf_counter()
                try:
                    out = await embedder.embed([f.text or "" for f in chosen])
                except Exception as exc:
                    self.embedder_error = f"embedding failed: {exc}"
                    log.warning("drift embedding failed: %s", exc)
                else:
                    name = embedder.name
                    packed = np.asarray(out, dtype="<f2")
                    vectors = {f.trace_id: packed[i].tobytes() for i, f in enumerate(chosen)}
                    self._count("embedded", len(chosen))
                spent = time.perf_counter() - t0
                self.embed_seconds += spent
                if self._metrics is not None:
                    self._metrics.embed_seconds.inc(spent)
        return [_row(f, vectors.get(f.trace_id), name) for f in found]

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("drift samples left at shutdown could not be written")
        if self._embedder is not None:
            await self._embedder.aclose()


def _row(f: Features, vector: bytes | None, embedder: str | None) -> dict[str, Any]:
    return {
        "trace_id": f.trace_id,
        "created_at": f.created_at,
        "model": f.model,
        "prompt_name": f.prompt_name,
        "key_id": f.key_id,
        "team_id": f.team_id,
        "user_id": f.user_id,
        "end_user": f.end_user,
        "prompt_chars": f.prompt_chars,
        "answer_chars": f.answer_chars,
        "completion_tokens": f.completion_tokens,
        "language": f.language,
        "refusal": f.refusal,
        "finish_reason": f.finish_reason,
        "tool_calls": f.tool_calls,
        "json_valid": f.json_valid,
        "embedder": embedder if vector is not None else None,
        "embedding": vector,
    }
