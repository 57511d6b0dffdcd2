"""`python -m bench quant`: the local model's quantisations measured against each other.

The only GGUF on disk is SmolLM2-135M-Instruct as Q4_1 (the `local` extra), so every other type
is *requantised* from it (`opsgate.tools.quantize`): lower types are compared with Q4_1, the
file they came from; Q8_0 and F16 carry Q4_1's weights unchanged (bar rounding), so their size,
memory and speed say something and their quality columns only show the noise floor: llama.cpp
multiplies quantised weights with 8-bit-quantised activations and F16 weights with F16 ones,
so even identical weights do not give identical greedy answers.

Each file is measured in a process of its own (`bench.quant_child`, bounded by a timeout):
- quality, once: greedy answers to `QA_ROWS` HaluEval QA questions with their knowledge text
  (read from ../shared/data; a match when the gold answer, normalised, is in the answer), the
  share of answers identical to Q4_1's, and perplexity over `PPL_TOKENS` tokens of other rows'
  knowledge text with the mean KL divergence from Q4_1's next-token distribution and the share
  of positions where both pick the same top token (llama.cpp's own quantisation metrics);
- speed, `rounds` times, files interleaved: prompt tokens/s (one batch), generation tokens/s
  (greedy, single stream) and the process's peak resident memory.

The files stay in $OPSGATE_QUANT_DIR (default ~/.cache/opsgate-quant, 1.3 GB) for the next run.
A run took 22 minutes on the shared 2-core box; every child and the whole run are time-bounded.
"""

from __future__ import annotations

import os
import re
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from bench.procs import REPO_ROOT, clean_env
from bench.report import Grid, grids_markdown
from bench.stats import median
from opsgate.config.defaults import bundled_gguf
from opsgate.tools.quantize import quantize, stored_as, tensor_types

Progress = Callable[[str], None]
REFERENCE = "Q4_1"
KINDS = ("F16", "Q8_0", "Q6_K", "Q5_1", "Q5_0", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")
DATA = REPO_ROOT.parent / "shared" / "data" / "halueval_qa" / "dev.jsonl"
FOLDER = Path(os.environ.get("OPSGATE_QUANT_DIR", Path.home() / ".cache" / "opsgate-quant"))
QA_ROWS = 20
PPL_TOKENS = 1024
ANSWER_TOKENS = 16
PROMPT_TOKENS = 256
REPEATS = 1
THREADS = 1
"""llama.cpp threads per model: on this shared 2-core box two threads spin at OpenMP barriers
while other processes hold a core (generation fell from ~20 to ~2 tokens/s), see the docs."""
CHILD_TIMEOUT_S = 600
BUDGET_S = 3600
GEN_PROMPT = "<|im_start|>user\nWrite a short story about a lighthouse keeper.<|im_end|>\n"
GEN_PROMPT += "<|im_start|>assistant\n"
QA_PROMPT = "Answer with a few words from the text.\n\nText: {knowledge}\n\nQuestion: {question}"


@dataclass(frozen=True, slots=True)
class EvalSet:
    questions: list[str]
    gold: list[str]
    ppl_text: str


def eval_set() -> EvalSet:
    """Faithful HaluEval QA rows in id order: the first `QA_ROWS` with short knowledge as
    questions, the knowledge of the rows after them as the perplexity text."""
    if not DATA.is_file():
        raise RuntimeError(f"{DATA} is missing (the shared development data)")
    rows = [orjson.loads(line) for line in DATA.read_bytes().splitlines() if line.strip()]
    rows = sorted((r for r in rows if r["label"] == 0), key=lambda r: r["id"])
    qa = [r for r in rows if len(r["knowledge"]) <= 600][:QA_ROWS]
    used = {r["pair_id"] for r in qa}
    text = "\n\n".join(r["knowledge"] for r in rows if r["pair_id"] not in used)
    return EvalSet(
        [QA_PROMPT.format(knowledge=r["knowledge"], question=r["question"]) for r in qa],
        [r["answer"] for r in qa],
        text[: PPL_TOKENS * 8],  # comfortably more than PPL_TOKENS tokens
    )


def normalise(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


@dataclass(slots=True)
class Variant:
    kind: str
    path: Path
    size: int
    types: str
    quality: dict[str, Any] = field(default_factory=dict)
    speed: list[dict[str, Any]] = field(default_factory=list)

    def med(self, key: str) -> float:
        return median([v for s in self.speed for v in s[key]])

    @property
    def peak_mb(self) -> float:
        return median([s["peak_rss_mb"] - s["rss_before_mb"] for s in self.speed])


@dataclass(slots=True)
class QuantRun:
    threads: int
    rounds: int
    evals: EvalSet
    variants: list[Variant]

    def get(self, kind: str) -> Variant | None:
        return next((v for v in self.variants if v.kind == kind), None)


def child(job: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Run one measurement in `bench.quant_child`; RuntimeError with its stderr on failure."""
    timeout = min(CHILD_TIMEOUT_S, deadline - time.monotonic())
    if timeout <= 0:
        raise RuntimeError(f"quant: time budget of {BUDGET_S} s spent")
    with tempfile.TemporaryDirectory(prefix="bench-quant-") as tmp:
        job_file, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_bytes(orjson.dumps(job))
        argv = [sys.executable, "-m", "bench.quant_child", str(job_file), str(result)]
        try:
            done = subprocess.run(
                argv, env=clean_env(), capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"quant: {job['model']} took over {timeout:.0f} s") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"quant: {job['model']} failed ({done.returncode}):\n{tail}")
        loaded: dict[str, Any] = orjson.loads(result.read_bytes())
        return loaded


def run_quant(rounds: int, threads: int, progress: Progress) -> QuantRun:
    source = bundled_gguf()
    if source is None:
        raise RuntimeError("the local extra is not installed: make local")
    deadline = time.monotonic() + BUDGET_S
    evals = eval_set()
    progress(f"requantising {Path(source).name} to {', '.join(KINDS)} in {FOLDER}")
    made = quantize(source, FOLDER, KINDS, threads=threads)
    ref = Variant(REFERENCE, Path(source), Path(source).stat().st_size, "")
    variants = [ref] + [Variant(q.kind, q.path, q.size, "") for q in made]
    for v in variants:
        v.types = stored_as(tensor_types(v.path))
    run = QuantRun(threads, rounds, evals, variants)
    with tempfile.TemporaryDirectory(prefix="bench-quant-ref-") as reference:
        base = {"threads": threads, "reference": reference}
        for v in variants:  # the reference first: it writes the log-probabilities
            progress(f"quality: {v.kind} ({time.monotonic() - deadline + BUDGET_S:.0f} s in)")
            job = {**base, "what": "quality", "model": str(v.path), "questions": evals.questions}
            job |= {"answer_tokens": ANSWER_TOKENS, "ppl_text": evals.ppl_text}
            job |= {"ppl_tokens": PPL_TOKENS, "write_reference": v is ref}
            v.quality = child(job, deadline)
    prompt_text = evals.ppl_text
    for r in range(rounds):
        for v in variants:
            progress(f"speed round {r + 1}/{rounds}: {v.kind}")
            job = {"threads": threads, "what": "speed", "model": str(v.path)}
            job |= {
                "prompt_text": prompt_text,
                "prompt_tokens": PROMPT_TOKENS,
                "gen_prompt": GEN_PROMPT,
            }
            job |= {"repeats": REPEATS}
            v.speed.append(child(job, deadline))
    return run


def _match(answer: str, gold: str) -> bool:
    return bool(normalise(gold)) and normalise(gold) in normalise(answer)


def qa_match(v: Variant, gold: list[str]) -> float:
    return sum(_match(a, g) for a, g in zip(v.quality["answers"], gold, strict=True)) / len(gold)


def same_answers(v: Variant, ref: Variant) -> float:
    pairs: list[tuple[str, str]] = list(
        zip(v.quality["answers"], ref.quality["answers"], strict=True)
    )
    return sum(a.strip() == b.strip() for a, b in pairs) / len(pairs)


def quant_grids(run: QuantRun) -> list[Grid]:
    ref = run.get(REFERENCE)
    f16 = run.get("F16")
    assert ref is not None
    order = sorted(run.variants, key=lambda v: -v.size)
    size = Grid(
        f"SmolLM2-135M-Instruct requantised from Q4_1: size and speed ({run.threads} llama.cpp "
        f"thread{'s' if run.threads > 1 else ''} per model, medians of {run.rounds} rounds "
        f"x {REPEATS})",
        (
            "type",
            "weights stored as",
            "file MB",
            "F16 / file",
            "peak RSS MB",
            "prompt tok/s",
            "gen tok/s",
            "gen vs F16",
        ),
    )
    for v in order:
        gen = v.med("gen_tps")
        size.rows.append(
            (
                v.kind + (" (shipped)" if v is ref else ""),
                v.types,
                f"{v.size / 1e6:.1f}",
                f"{f16.size / v.size:.2f}x" if f16 else "-",
                f"{v.peak_mb:.0f}",
                f"{v.med('prompt_tps'):.0f}",
                f"{gen:.1f}",
                f"{gen / f16.med('gen_tps'):.2f}x" if f16 else "-",
            )
        )
    size.notes.append(
        "peak RSS = the measuring process's peak resident memory minus what it held before "
        "loading (llama.cpp maps the file: the weights count once touched, plus the KV cache "
        "and compute buffers for 1,024 tokens); prompt = one batch of "
        f"{run.variants[0].speed[0]['prompt_tokens']} tokens; gen = greedy single stream"
    )
    quality = Grid(
        f"Quality against Q4_1, the file they came from ({len(run.evals.gold)} HaluEval QA "
        f"questions, perplexity over {ref.quality['scored']} tokens of Wikipedia text)",
        (
            "type",
            "perplexity",
            "vs Q4_1",
            "KL vs Q4_1",
            "same top token",
            "QA match",
            "same answer as Q4_1",
        ),
    )
    for v in order:
        q = v.quality
        quality.rows.append(
            (
                v.kind + (" (reference)" if v is ref else ""),
                f"{q['ppl']:.2f}",
                f"{q['ppl'] / ref.quality['ppl'] - 1:+.1%}",
                f"{q['kl']:.4f}",
                f"{q['top1']:.1%}",
                f"{qa_match(v, run.evals.gold):.0%}",
                f"{same_answers(v, ref):.0%}",
            )
        )
    quality.notes.append(
        "F16 and Q8_0 hold Q4_1's weights (requantising cannot restore precision): their rows "
        "are the noise floor of the arithmetic; QA match = the gold answer, normalised, inside the "
        f"model's answer (greedy, at most {ANSWER_TOKENS} tokens)"
    )
    return [size, quality]


_SPACES = re.compile(r"\s+")


def main_quant(args: Any, note: str, console: Console, progress: Progress) -> None:
    from bench.docs import update_section

    grids = quant_grids(run_quant(max(1, args.rounds), THREADS, progress))
    for grid in grids:
        grid.rich(console)
    if not args.no_docs:
        intro = _SPACES.sub(" ", __doc__.split("\n\n", 1)[1].split("\n\nEach", 1)[0])
        body = ["## Quantisation (`python -m bench quant`)", "", note, "", intro]
        update_section("quant", "\n".join([*body, *grids_markdown(grids)]))
