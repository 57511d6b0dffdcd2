"""The comparison a distillation ends with: student vs teacher (and the untrained base) on the
held-out inputs: quality, cost per 1k requests and latency, measured.

- Quality: each scorer's mean over the held-out inputs, scored against the dataset's expected
  answer where the row has one, else against the teacher's answer.
- Cost per 1k requests: the teacher's is what the gateway charged for its held-out calls (the
  gateway's price table applied to the tokens, `x-opsgate-cost-usd`), averaged; the student's
  (and the base's) is its CPU seconds per request times the stated price of a CPU hour.
- Latency: median and p95 per request; the teacher's measured by the caller through the
  gateway, the student's around each local generation (model loading left out).

Student answers come from a worker process (`tuning.distill_worker`): torch never loads in the
gateway's process.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from opsgate.evals.scorers import Sample, Scorer, apply
from opsgate.tuning.distill_teacher import Answer

IN_FILE, OUT_FILE = "compare.json", "compare-out.json"
WORKER_TIMEOUT_S = 3600.0


class StudentError(RuntimeError):
    """The worker that generates the student's answers failed."""


async def student_answers(
    folder: Path,
    base: str,
    adapter: str,
    held_out: Sequence[Answer],
    *,
    max_new_tokens: int,
    threads: int,
) -> dict[str, Any]:
    """The student's (and the base's) answers and timings, from a worker process."""
    spec = {
        "base": base,
        "adapter": adapter,
        "conversations": [a.input.messages for a in held_out],
        "max_new_tokens": max_new_tokens,
        "threads": threads,
    }
    await asyncio.to_thread((folder / IN_FILE).write_bytes, orjson.dumps(spec))
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opsgate.tuning.distill_worker", str(folder),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), WORKER_TIMEOUT_S)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise StudentError(lines[-1] if lines else f"the worker exited with {proc.returncode}")
    out: dict[str, Any] = orjson.loads(await asyncio.to_thread((folder / OUT_FILE).read_bytes))
    return out


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in (0, 1])."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def _quality(
    scorers: Sequence[Scorer], outputs: Sequence[str], held_out: Sequence[Answer]
) -> dict[str, float | None]:
    means: dict[str, float | None] = {}
    for scorer in scorers:
        values = []
        for output, teacher in zip(outputs, held_out, strict=True):
            reference = (
                teacher.input.expected if teacher.input.expected is not None else teacher.text
            )
            sample = Sample(teacher.input.question, output, reference)
            try:
                score = await apply(scorer, sample)
            except Exception:  # a plugin's bug scores as a failure, not a crash
                continue
            if score.value is not None:
                values.append(score.value)
        means[scorer.name] = round(statistics.fmean(values), 4) if values else None
    return means


def _figures(latency_s: Sequence[float], cost_per_request: float) -> dict[str, Any]:
    return {
        "requests": len(latency_s),
        "cost_per_1k_usd": round(cost_per_request * 1000, 6),
        "latency_ms": {
            "median": round(statistics.median(latency_s) * 1000, 2),
            "p95": round(percentile(latency_s, 0.95) * 1000, 2),
        },
    }


async def compare(
    teacher: str,
    held_out: Sequence[Answer],
    local: dict[str, Any],
    scorers: Sequence[Scorer],
    *,
    adapter: str,
    student: str,
    cpu_hour_usd: float,
) -> dict[str, Any]:
    """The comparison table (rows: teacher, student, base) with its assumptions."""
    references = {"dataset" if a.input.expected is not None else "teacher" for a in held_out}
    cost = statistics.fmean(a.cost_usd for a in held_out)
    rows = [
        {
            "name": teacher,
            "role": "teacher",
            "quality": await _quality(scorers, [a.text for a in held_out], held_out),
            **_figures([a.latency_s for a in held_out], cost),
        }
    ]
    for role, name in (("student", adapter), ("base", student)):
        part = local[role]
        per_request = statistics.fmean(part["cpu_s"]) * cpu_hour_usd / 3600
        rows.append(
            {
                "name": name,
                "role": role,
                "quality": await _quality(scorers, part["answers"], held_out),
                **_figures(part["latency_s"], per_request),
                "cpu_seconds_per_request": round(statistics.fmean(part["cpu_s"]), 6),
            }
        )
    return {
        "held_out": len(held_out),
        "reference": "+".join(sorted(references)),
        "scorers": [s.name for s in scorers],
        "rows": rows,
        "assumptions": {
            "cpu_hour_usd": cpu_hour_usd,
            "teacher_cost": "what the gateway charged for the held-out calls (its price table)",
            "student_cost": "CPU seconds per request x cpu_hour_usd / 3600",
            "student_load_s": round(float(local.get("load_s", 0.0)), 3),
        },
    }
