"""Fine-tune a small transformer into an injection classifier for the `transformer` backend:
`python -m opsgate.tools.injection.finetune --out DIR`.

The base is the MiniLM the `embed` extra packages (all-MiniLM-L6-v2, 22M parameters; a BERT
encoder, so a classification head fits on it), or any local encoder folder (`--base`). It
trains on the same training part as the n-gram model (`data.split`: the held-out part is never
read) minus one grouped fold, which picks the thresholds (the lowest score that flags at most
`target_fpr` of its benign prompts, and of its benign documents) for the model as saved: no
model is calibrated on rows it was fitted on. The folder it writes loads with
`guard.injection.backend: transformer`; the thresholds travel in `opsgate-injection.json`
beside the weights, and the backend reads them from there. CPU only; about 5 minutes on two
cores. Needs the `guard-ml` and `embed` extras.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opsgate.guard.injection.transformer import THRESHOLDS_FILE, TransformerDetector, model_limit
from opsgate.tools.injection import data, train
from opsgate.tools.injection.data import Example

Rows = list[tuple[str, int, bool]]
"""(text, label, untrusted) training rows."""


@dataclass(frozen=True, slots=True)
class FinetuneConfig:
    epochs: int = 4
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_length: int = 256
    """Tokens per training row (the head of a long text); scans chunk whole texts."""
    calibration_fold: int = 0
    folds: int = 5
    target_fpr: float = 0.025
    """One fold of the dev file's training part is too small for the n-gram model's 1.5%."""
    seed: int = data.SEED


def rows(examples: Sequence[Example]) -> Rows:
    """(text, label, untrusted); a poisoned document's attack text is a positive of its own,
    as for the n-gram model (the injected sentence may sit past the first 256 tokens)."""
    found = [(ex.text, ex.label, ex.untrusted) for ex in examples]
    found += [(ex.attack_text, 1, True) for ex in examples if ex.attack_text]
    return found


def cell_weights(items: Rows) -> list[float]:
    """Each (prompt/document, label) cell weighs the same in the loss (mean weight 1)."""
    cells = [(untrusted, label) for _, label, untrusted in items]
    counts = {cell: cells.count(cell) for cell in set(cells)}
    raw = [1.0 / counts[cell] for cell in cells]
    return [w * len(raw) / sum(raw) for w in raw]


def fit(
    model: Any, tokenizer: Any, items: list[tuple[str, int, bool]], cfg: FinetuneConfig
) -> None:
    """Weighted cross-entropy, AdamW with linear decay; fixed seed and order per epoch."""
    import torch

    torch.manual_seed(cfg.seed)
    weights = torch.tensor(cell_weights(items), dtype=torch.float32)
    length = min(cfg.max_length, model_limit(model, tokenizer))
    steps = cfg.epochs * -(-len(items) // cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / steps))
    order = np.random.default_rng(cfg.seed)
    model.train()
    for _ in range(cfg.epochs):
        permutation = order.permutation(len(items))
        for start in range(0, len(items), cfg.batch_size):
            batch = permutation[start : start + cfg.batch_size]
            encoded = tokenizer(
                [items[i][0] for i in batch],
                truncation=True,
                max_length=length,
                padding=True,
                return_tensors="pt",
            )
            labels = torch.tensor([items[i][1] for i in batch])
            logits = model(**encoded).logits
            losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
            loss: Any = (losses * weights[batch]).mean()
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    model.eval()


def thresholds(
    detector: TransformerDetector, examples: Sequence[Example], target_fpr: float
) -> tuple[float, float]:
    """Per kind (prompt, document): the lowest score flagging at most `target_fpr` of the
    calibration fold's benign rows, scored as the gateway scores them (whole text, chunked)."""
    found = []
    for kind in (False, True):
        benign = [ex.text for ex in examples if ex.untrusted == kind and not ex.label]
        scores = np.array([detector.scan(text).score for text in benign])
        found.append(train.threshold_at(scores, target_fpr) if len(scores) else 0.5)
    return found[0], found[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opsgate.tools.injection.finetune", description=__doc__
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--base", type=Path, default=None, help="local encoder folder")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=FinetuneConfig().epochs)
    args = parser.parse_args(argv)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from opsgate.cache.embed.local import packaged_model_path

    cfg = FinetuneConfig(epochs=args.epochs)
    started = time.monotonic()
    base = args.base or packaged_model_path()
    examples = data.load_all(args.data)
    fitting, heldout = data.split(examples, cfg.seed)
    fold_of = data.folds(fitting, cfg.folds, cfg.seed)
    training = [ex for ex, f in zip(fitting, fold_of, strict=True) if f != cfg.calibration_fold]
    calibration = [ex for ex, f in zip(fitting, fold_of, strict=True) if f == cfg.calibration_fold]
    torch.manual_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        local_files_only=True,
        num_labels=2,
        id2label={0: "SAFE", 1: "INJECTION"},
        label2id={"SAFE": 0, "INJECTION": 1},
    )
    fit(model, tokenizer, rows(training), cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    detector = TransformerDetector.load(args.out)
    prompt, document = thresholds(detector, calibration, cfg.target_fpr)
    meta = {
        "threshold": prompt,
        "untrusted_threshold": document,
        "config": asdict(cfg),
        "base": str(base),
        "train_digest": train.digest(training),
        "heldout_digest": train.digest(heldout),
    }
    (args.out / THRESHOLDS_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    print(
        f"fine-tuned on {len(training)} rows, calibrated on {len(calibration)} "
        f"({len(heldout)} held out, never read) in {time.monotonic() - started:.0f} s; "
        f"thresholds {prompt:.3f} (prompts), {document:.3f} (documents); wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
