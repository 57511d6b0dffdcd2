"""One GGUF file measured in a process of its own (`bench.quant` starts it), so its resident
memory is its own and a stuck llama.cpp call is ended by the parent's timeout.

`python -m bench.quant_child JOB.json RESULT.json`: the job names the model, the threads and
what to measure: `speed` (prompt and generation tokens/s, peak resident memory) or `quality`
(greedy answers to the QA prompts, then perplexity over the fixed text with every position's
log-probabilities; the reference run saves those, the others compare with them: mean KL
divergence and top-token agreement).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

GEN_TOKENS = 64
PPL_WINDOW = 512


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident (VmRSS) or peak resident (VmHWM) memory in MB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def load(job: dict[str, Any], **extra: Any) -> Any:
    from llama_cpp import Llama

    return Llama(
        model_path=job["model"],
        n_threads=job["threads"],
        n_threads_batch=job["threads"],
        n_batch=PPL_WINDOW,
        verbose=False,
        **extra,
    )


def speed(job: dict[str, Any]) -> dict[str, Any]:
    """Prompt tokens/s (one `eval` of the fixed prompt) and generation tokens/s (greedy,
    `GEN_TOKENS` tokens, past any end-of-turn), `repeats` times each; the peak memory."""
    before = rss_mb()
    started = time.perf_counter()
    llm = load(job, n_ctx=1024)
    loaded = time.perf_counter() - started
    prompt = llm.tokenize(job["prompt_text"].encode())[: job["prompt_tokens"]]
    chat = llm.tokenize(job["gen_prompt"].encode())
    prompt_rates, gen_rates = [], []
    for _ in range(job["repeats"]):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        prompt_rates.append(len(prompt) / (time.perf_counter() - t0))
        llm.reset()
        first = last = 0.0
        for n, _token in enumerate(llm.generate(chat, temp=0.0), start=1):
            if n == 1:
                first = time.perf_counter()
            if n >= GEN_TOKENS:
                last = time.perf_counter()
                break
        gen_rates.append((GEN_TOKENS - 1) / (last - first))
    peak = rss_mb("VmHWM")
    llm.close()
    return {
        "load_s": loaded,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "prompt_tokens": len(prompt),
        "prompt_tps": prompt_rates,
        "gen_tps": gen_rates,
    }


def answers(llm: Any, questions: list[str], max_tokens: int) -> list[str]:
    out = []
    for question in questions:
        llm.reset()
        reply = llm.create_chat_completion(
            messages=[{"role": "user", "content": question}],
            max_tokens=max_tokens,
            temperature=0.0,
        )
        out.append(reply["choices"][0]["message"]["content"] or "")
    return out


def log_softmax(logits: Any) -> Any:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def perplexity(
    llm: Any, text: str, max_tokens: int, reference: Path, write: bool
) -> dict[str, Any]:
    """Negative log-likelihood over `text` in windows of `PPL_WINDOW` tokens; with a reference
    run's log-probabilities, the mean KL(reference || this) and top-token agreement."""
    tokens = llm.tokenize(text.encode())[:max_tokens]
    nll, scored, kl, same = 0.0, 0, 0.0, 0
    for w, start in enumerate(range(0, len(tokens) - 1, PPL_WINDOW)):
        window = tokens[start : start + PPL_WINDOW]
        if len(window) < 2:
            break
        llm.reset()
        llm.eval(window)
        logp = log_softmax(np.asarray(llm.scores[: len(window) - 1], dtype=np.float32))
        targets = np.asarray(window[1:])
        nll -= float(logp[np.arange(len(targets)), targets].sum())
        scored += len(targets)
        ref_file = reference / f"window{w}.npy"
        if write:
            np.save(ref_file, logp.astype(np.float16))
            ref = logp
        else:
            ref = np.load(ref_file).astype(np.float32)
        kl += float((np.exp(ref) * (ref - logp)).sum(axis=1).sum())
        same += int((ref.argmax(axis=1) == logp.argmax(axis=1)).sum())
    return {
        "nll": nll,
        "scored": scored,
        "ppl": float(np.exp(nll / scored)),
        "kl": kl / scored,
        "top1": same / scored,
    }


def quality(job: dict[str, Any]) -> dict[str, Any]:
    llm = load(job, n_ctx=1024)
    got = answers(llm, job["questions"], job["answer_tokens"])
    llm.close()
    llm = load(job, n_ctx=PPL_WINDOW, logits_all=True)
    ppl = perplexity(
        llm, job["ppl_text"], job["ppl_tokens"], Path(job["reference"]), job["write_reference"]
    )
    llm.close()
    return {"answers": got, **ppl}


def main(argv: list[str]) -> int:
    job = orjson.loads(Path(argv[0]).read_bytes())
    result = speed(job) if job["what"] == "speed" else quality(job)
    Path(argv[1]).write_bytes(orjson.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
