"""The training worker: `python -m opsgate.tuning.worker JOB_FOLDER`, one process per job.

The gateway's runner starts it (training never runs on the event loop, nor in the gateway's
process: torch stays out of the serving process, and an out-of-memory kill takes only this
one). It reads `job.json` and `data.jsonl` from the job folder, trains with
`tuning.lora.train_lora` (resuming from the folder's checkpoint when there is one) and reports
on stdout, one `@opsgate <json>` line per event: `start`, `step`, then `done`, `cancelled` or
`error`. A `STOP` file in the folder asks it to stop after the current step (the checkpoint
is saved first).
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from opsgate.tuning import runner
from opsgate.tuning.data import TrainingDataError, parse_lines, split
from opsgate.tuning.lora import BaseModelError, LoraSettings, train_lora

MARK = runner.MARK.decode()


def emit(event: str, **fields: Any) -> None:
    """One event on stdout; every event but `step` carries the CPU seconds spent so far."""
    if event != "step":
        fields["cpu_seconds"] = time.process_time()
    print(MARK + json.dumps({"event": event, **fields}), flush=True)


def settings_of(raw: dict[str, Any]) -> LoraSettings:
    fields = dict(raw)
    if "target_modules" in fields:
        fields["target_modules"] = tuple(fields["target_modules"])
    return LoraSettings(**fields)


def run(folder: Path) -> int:
    spec = json.loads((folder / runner.JOB_FILE).read_text())
    torch.set_num_threads(int(spec.get("threads", 1)))
    settings = settings_of(spec["settings"])
    with (folder / runner.DATA_FILE).open("rb") as lines:
        data = split(parse_lines(lines), float(spec.get("validation", 0.2)), seed=spec["seed"])
    per_epoch = math.ceil(len(data.train) / settings.batch_size)
    emit(
        "start",
        total_steps=per_epoch * settings.epochs,
        train=len(data.train),
        validation=len(data.validation),
    )
    stop = folder / runner.STOP_FILE
    result = train_lora(
        Path(spec["base"]),
        data,
        folder,
        settings,
        should_stop=stop.exists,
        on_step=lambda step, loss: emit("step", step=step, loss=loss),
    )
    if result.cancelled:
        emit("cancelled", steps=result.steps)
        return 0
    emit(
        "done",
        steps=result.steps,
        validation_before=result.validation_before,
        validation_after=result.validation_after,
        resumed_from=result.resumed_from,
        adapter=str(result.adapter),
    )
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m opsgate.tuning.worker JOB_FOLDER", file=sys.stderr)
        return 2
    try:
        return run(Path(argv[0]))
    except (TrainingDataError, BaseModelError, FileNotFoundError) as exc:
        emit("error", message=str(exc))
    except (torch.OutOfMemoryError, MemoryError):
        emit(
            "error",
            message="out of memory: lower batch_size or max_length, or use a bigger machine",
        )
    except Exception as exc:  # anything else: a clear line for the job, the traceback on stderr
        traceback.print_exc()
        emit("error", message=f"{type(exc).__name__}: {exc}"[:2000])
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
