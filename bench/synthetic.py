"""Synthetic traces shaped like the gateway's own: uuid4-hex ids, 1-3 spans, skewed traffic.

One seeded `TraceFactory` feeds every trace benchmark, so the writer, the bulk load and the
rollups all see the same kind of record: ~20 models served by ~5 deployments, ~50 keys in ~10
teams, ~500 end users, a few per cent errors, cache hits and fallbacks. Popularity is Zipf-like
(a few models, keys and users carry most of the traffic), as in real gateways.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from opsgate.trace import CacheResult, SpanRecord, TraceRecord

MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "claude-3-5-haiku",
    "claude-3-7-sonnet",
    "claude-sonnet-4",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.3-70b",
    "mistral-small",
    "mistral-large",
    "qwen2.5-7b",
    "qwen2.5-72b",
    "gemma-2-9b",
    "phi-4",
    "chat-default",
    "embed-small",
    "embed-large",
)
DEPLOYMENTS: tuple[str, ...] = ("openai-us", "azure-eu", "anthropic", "vllm-onprem", "ollama-lab")
DAY = 86_400.0


def _zipf(n: int, s: float = 1.0) -> list[float]:
    """Cumulative weights of a Zipf(s) popularity over `n` items."""
    return list(itertools.accumulate(1.0 / (rank + 1) ** s for rank in range(n)))


@dataclass(frozen=True, slots=True)
class Population:
    """Who calls what. A key belongs to one team; a model maps to one or two deployments."""

    models: tuple[str, ...] = MODELS
    deployments: tuple[str, ...] = DEPLOYMENTS
    keys: tuple[str, ...] = tuple(f"key_{i:03d}" for i in range(50))
    teams: tuple[str, ...] = tuple(f"team-{i:02d}" for i in range(10))
    end_users: tuple[str, ...] = tuple(f"user-{i:04d}" for i in range(500))

    def team_of(self, key_index: int) -> str:
        return self.teams[key_index % len(self.teams)]

    def deployments_of(self, model_index: int) -> tuple[str, str]:
        """(primary, fallback) deployment of a model."""
        n = len(self.deployments)
        return self.deployments[model_index % n], self.deployments[(model_index + 1) % n]


@dataclass(slots=True)
class TraceFactory:
    """Deterministic (seeded) synthetic `TraceRecord`s."""

    seed: int = 20_261_128
    population: Population = field(default_factory=Population)
    _rng: random.Random = field(init=False)
    _model_w: list[float] = field(init=False)
    _key_w: list[float] = field(init=False)
    _user_w: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._model_w = _zipf(len(self.population.models), 1.1)
        self._key_w = _zipf(len(self.population.keys), 0.8)
        self._user_w = _zipf(len(self.population.end_users), 0.9)

    def _pick(self, n: int, weights: list[float]) -> int:
        """An index in range(n) drawn by the cumulative `weights` (`random.choices`, faster)."""
        return min(n - 1, bisect.bisect(weights, self._rng.random() * weights[-1]))

    def make(self, started_at: float) -> TraceRecord:
        """One finished chat request that started at `started_at` (epoch seconds)."""
        rng, pop = self._rng, self.population
        m = self._pick(len(pop.models), self._model_w)
        k = self._pick(len(pop.keys), self._key_w)
        primary, fallback_dep = pop.deployments_of(m)
        trace_id = f"{rng.getrandbits(128):032x}"
        error = rng.random() < 0.02
        fallback = rng.random() < 0.05
        cache: CacheResult = "hit-exact" if rng.random() < 0.06 else "miss"
        stream = rng.random() < 0.35
        prompt = int(rng.lognormvariate(5.5, 0.9))
        completion = 0 if error else int(rng.lognormvariate(4.5, 0.8))
        duration = 2.0 if cache != "miss" else rng.lognormvariate(6.6, 0.7)
        deployment = fallback_dep if fallback else primary
        record = TraceRecord(
            trace_id=trace_id,
            started_at=started_at,
            duration_ms=duration,
            endpoint="chat",
            model_requested=pop.models[m],
            status="error" if error else "ok",
            http_status=502 if error else 200,
            error_type="upstream_error" if error else None,
            error_message="upstream answered 503 after 2 attempts" if error else None,
            ttft_ms=duration * rng.uniform(0.05, 0.4) if stream and not error else None,
            model_served=None if error else f"{pop.models[m]}-2024-08-06",
            deployment=deployment,
            provider=deployment.split("-")[0],
            attempts=2 if fallback or error else 1,
            fallback=fallback,
            stream=stream,
            key_id=pop.keys[k],
            team_id=pop.team_of(k),
            user_id=f"u{k:03d}",
            end_user=pop.end_users[self._pick(len(pop.end_users), self._user_w)],
            session_id=f"s-{rng.getrandbits(40):010x}" if rng.random() < 0.3 else None,
            metadata={"app": f"app-{k % 7}", "env": "prod"},
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=prompt // 2 if rng.random() < 0.1 else 0,
            cost_micros=(prompt * 15 + completion * 60) // 100,
            cache=cache,
            finish_reason=None if error else "stop",
        )
        record.spans = self._spans(record, primary, fallback_dep)
        return record

    def _spans(self, record: TraceRecord, primary: str, fallback_dep: str) -> list[SpanRecord]:
        """1-3 spans: an optional cache lookup, then one upstream attempt per try."""
        rng, tid, t = self._rng, record.trace_id, record.started_at
        spans: list[SpanRecord] = []
        if record.cache == "hit-exact" or rng.random() < 0.3:
            spans.append(SpanRecord(f"{tid[:12]}c000", tid, "cache_lookup", t, 0.4))
            if record.cache == "hit-exact":
                return spans
        targets = [primary, fallback_dep][: record.attempts]
        each = record.duration_ms / len(targets)
        for i, dep in enumerate(targets):
            failed = i < len(targets) - 1 or record.status == "error"
            attrs: dict[str, object] = {"deployment": dep, "model": record.model_requested}
            attrs["attempt"] = i + 1
            if failed:
                attrs["error"] = "upstream_error"
            spans.append(
                SpanRecord(
                    span_id=f"{tid[:12]}{i:04x}",
                    trace_id=tid,
                    name="upstream_attempt",
                    started_at=t + i * each / 1000,
                    duration_ms=each,
                    status="error" if failed else "ok",
                    attributes=attrs,
                )
            )
        return spans[:3]

    def between(self, n: int, start: float, end: float) -> list[TraceRecord]:
        """`n` records starting uniformly at random in [start, end), in time order."""
        times = sorted(self._rng.uniform(start, end) for _ in range(n))
        return [self.make(min(t, end - 1e-3)) for t in times]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One slice of a spread load: `size` traces over [start, end), whole minutes of its own."""

    index: int
    of: int
    size: int
    start: float
    end: float

    def records(self, factory: TraceFactory) -> list[TraceRecord]:
        return factory.between(self.size, self.start, self.end)


def spread(rows: int, end: float, chunk: int, days: int = 30) -> Iterator[Chunk]:
    """`rows` traces over the `days` before `end`, in chunks of at most `chunk` traces, each over
    its own whole minutes (so its `usage_minute` buckets are complete and never shared)."""
    chunks = max(1, math.ceil(rows / chunk))
    window = max(60.0, (days * DAY / chunks) // 60 * 60)
    start = end - chunks * window
    for i in range(chunks):
        size = min(chunk, rows - i * chunk)
        yield Chunk(i, chunks, size, start + i * window, start + (i + 1) * window)
