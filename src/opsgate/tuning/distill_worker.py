"""The student's answers for a distillation's comparison: `python -m opsgate.tuning.distill_worker
FOLDER`, one process (torch stays out of the gateway's process, as for training).

It reads `compare.json` (the base folder, the adapter folder, the held-out conversations,
`max_new_tokens`, torch threads), answers each conversation alone (greedy, `tuning.generate`)
with the adapter and then with the base (adapter disabled), timing each request: wall seconds
and this process's CPU seconds, model loading left out. The figures go to `compare-out.json`;
a failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from opsgate.tuning.distill_compare import IN_FILE, OUT_FILE
from opsgate.tuning.generate import generate
from opsgate.tuning.lora import load_adapter


def _answer_each(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, Any]]], max_new_tokens: int
) -> dict[str, list[Any]]:
    answers: list[str] = []
    latency: list[float] = []
    cpu: list[float] = []
    for messages in conversations:
        wall, spent = time.perf_counter(), time.process_time()
        answers.extend(generate(model, tokenizer, [messages], max_new_tokens))
        latency.append(time.perf_counter() - wall)
        cpu.append(time.process_time() - spent)
    return {"answers": answers, "latency_s": latency, "cpu_s": cpu}


def run(folder: Path) -> None:
    spec = json.loads((folder / IN_FILE).read_text())
    torch.set_num_threads(int(spec.get("threads", 1)))
    started = time.perf_counter()
    tokenizer, model = load_adapter(Path(spec["base"]), Path(spec["adapter"]))
    loaded = time.perf_counter() - started
    conversations, limit = spec["conversations"], int(spec["max_new_tokens"])
    student = _answer_each(model, tokenizer, conversations, limit)
    with model.disable_adapter():
        base = _answer_each(model, tokenizer, conversations, limit)
    out = {"student": student, "base": base, "load_s": loaded}
    (folder / OUT_FILE).write_text(json.dumps(out))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m opsgate.tuning.distill_worker FOLDER", file=sys.stderr)
        return 2
    try:
        run(Path(argv[0]))
    except Exception as exc:  # one clear line for the record
        print(f"error: {type(exc).__name__}: {exc}"[:2000], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
