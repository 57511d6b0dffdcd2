"""orjson vs stdlib json on the bodies the gateway handles on every request."""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bench.servers import request_body
from bench.stats import median
from bench.upstream import completion_body, stream_body


@dataclass(frozen=True, slots=True)
class JsonResult:
    case: str
    stdlib_us: float
    orjson_us: float

    @property
    def speedup(self) -> float:
        return self.stdlib_us / self.orjson_us if self.orjson_us else 0.0


def _time_us(fn: Callable[[], Any], repeats: int, budget_s: float) -> float:
    """Median microseconds per call over `repeats` runs sized to fit `budget_s` in all."""
    once = min(timeit.repeat(fn, number=200, repeat=3)) / 200
    number = max(100, int(budget_s / repeats / max(once, 1e-9)))
    return median([t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=repeats)])


def run_json(repeats: int = 7, budget_s: float = 0.4) -> list[JsonResult]:
    completion = completion_body()
    request = request_body()
    chunk = stream_body().split(b"\n\n")[1].removeprefix(b"data: ")
    completion_obj = orjson.loads(completion)
    request_obj = orjson.loads(request)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("loads request", lambda: json.loads(request), lambda: orjson.loads(request)),
        (
            "dumps request",
            lambda: json.dumps(request_obj).encode(),
            lambda: orjson.dumps(request_obj),
        ),
        ("loads chat.completion", lambda: json.loads(completion), lambda: orjson.loads(completion)),
        (
            "dumps chat.completion",
            lambda: json.dumps(completion_obj).encode(),
            lambda: orjson.dumps(completion_obj),
        ),
        ("loads stream chunk", lambda: json.loads(chunk), lambda: orjson.loads(chunk)),
    ]
    return [
        JsonResult(name, _time_us(std, repeats, budget_s), _time_us(orj, repeats, budget_s))
        for name, std, orj in cases
    ]
