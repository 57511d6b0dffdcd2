"""The training worker: `python -m opsgate.tuning.worker JOB_FOLDER`, one process per job.

The gateway's runner starts it (training never runs on the event loop, nor in the gateway's
process: torch stays out of the serving process, and an out-of-memory kill takes only this
one). It reads `job.json` and `data.jsonl` from the job folder, trains with
`tuning.lora.train_lora` (resuming from the folder's checkpoint when there is one) and reports
on stdout, one `@opsgate <json>` line per event: `start`, `step`, then `done`, `cancelled` or
`error`. A `STOP` file in the folder asks it to stop after the current step (the checkpoint
is saved first).

Around training it writes the data card (`tuning.card`: the service's part from `job.json`,
with token counts by the base's tokenizer) and, once trained, compares base and adapter on the
validation split (`tuning.evaluate`); both travel in its events. Plain lines on stdout and
stderr (progress every twentieth of the run, warnings, a traceback) are the job's log.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from opsgate.tuning import runner
from opsgate.tuning.card import CARD_FILE, completed, token_counts
from opsgate.tuning.data import Example, Split, TrainingDataError, parse_lines, split
from opsgate.tuning.evaluate import EvaluationBody, compare
from opsgate.tuning.generate import generate
from opsgate.tuning.lora import (
    BaseModelError,
    LoraSettings,
    base_fingerprint,
    lengths,
    load_adapter,
    load_tokenizer,
    train_lora,
)

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
    base = Path(spec["base"])
    card = data_card(folder, spec, base, data, settings)
    total = math.ceil(len(data.train) / settings.batch_size) * settings.epochs
    emit("start", total_steps=total, train=len(data.train), validation=len(data.validation))
    say(f"training on {len(data.train)} examples ({len(data.validation)} held back): {total} steps")
    every = max(1, total // 20)

    def on_step(step: int, loss: float) -> None:
        emit("step", step=step, loss=loss)
        if step % every == 0 or step == total:
            say(f"step {step}/{total} loss {loss:.4f}")

    stop = folder / runner.STOP_FILE
    result = train_lora(base, data, folder, settings, should_stop=stop.exists, on_step=on_step)
    if result.cancelled:
        say(f"stopped after step {result.steps} (checkpoint saved)")
        emit("cancelled", steps=result.steps)
        return 0
    say(f"validation loss {result.validation_before:.4f} -> {result.validation_after:.4f}")
    if card is not None:
        (result.adapter / CARD_FILE).write_text(json.dumps(card, indent=2))
    emit(
        "done",
        steps=result.steps,
        validation_before=result.validation_before,
        validation_after=result.validation_after,
        resumed_from=result.resumed_from,
        adapter=str(result.adapter),
        evaluation=evaluate(base, result.adapter, data.validation, spec.get("evaluation")),
    )
    return 0


def say(line: str) -> None:
    """A line of the job's log (not an event)."""
    print(line, flush=True)


def data_card(
    folder: Path, spec: dict[str, Any], base: Path, data: Split, settings: LoraSettings
) -> dict[str, Any] | None:
    """The service's card completed with token counts; written to the folder, and sent."""
    if not isinstance(spec.get("card"), dict):
        return None
    tokenizer = load_tokenizer(base)
    tokens = token_counts(data, lambda ex: lengths(tokenizer, ex), settings.max_length)
    card = completed(
        spec["card"], tokens=tokens, base={"path": str(base), "fingerprint": base_fingerprint(base)}
    )
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2))
    emit("card", card=card)
    return card


def evaluate(
    base: Path, adapter: Path, validation: list[Example], raw: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Base vs adapter on the validation split; a failure is recorded, not the job's end (the
    adapter is trained and saved)."""
    settings = EvaluationBody(**(raw or {}))
    if not settings.scorers:
        return None
    rows = validation[: settings.limit]
    say(f"evaluating base and adapter on {len(rows)} validation examples")
    try:
        tokenizer, model = load_adapter(base, adapter)
        prompts = [ex.prompt for ex in rows]
        with model.disable_adapter():
            plain = generate(model, tokenizer, prompts, settings.max_new_tokens)
        tuned = generate(model, tokenizer, prompts, settings.max_new_tokens)
        out = asyncio.run(compare(rows, plain, tuned, settings.scorers, keep=settings.examples))
    except Exception as exc:
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"[:2000], "n": len(rows)}
    out["max_new_tokens"] = settings.max_new_tokens
    for name, s in out["scorers"].items():
        say(f"{name}: base {s['base']} adapter {s['adapter']} delta {s['delta']} n {s['scored']}")
    return dict(out)


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
