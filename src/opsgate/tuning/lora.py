"""LoRA fine-tuning with `peft` + `transformers` (the `tune` extra), CPU or GPU, same code.

A plain training loop rather than `transformers.Trainer`: the job needs a loss per step (the
curve), a cancel check between steps, and a checkpoint it can resume from bit for bit (adapter
weights, optimiser state, step, the curve so far). The loss covers the answer's tokens only.

Base models load with `trust_remote_code=False`, always: a base folder that asks for remote
code (`auto_map` in its config, or Python files) is refused before anything is loaded. An
adapter records a fingerprint of its base, and loading it onto another base is refused.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from peft.utils import get_peft_model_state_dict
from transformers import AutoModelForCausalLM, AutoTokenizer

from opsgate.tuning.base import BaseModelError, base_fingerprint
from opsgate.tuning.data import Example, Split

ADAPTER_CARD = "opsgate-adapter.json"
CHECKPOINT = "checkpoint.pt"
__all__ = [
    "AdapterMismatchError",
    "BaseModelError",
    "LoraSettings",
    "TrainResult",
    "base_fingerprint",
    "lengths",
    "load_adapter",
    "load_base",
    "load_tokenizer",
    "train_lora",
]


class AdapterMismatchError(ValueError):
    """An adapter was trained on another base model."""


@dataclass(frozen=True, slots=True)
class LoraSettings:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    epochs: int = 3
    learning_rate: float = 5e-3
    batch_size: int = 4
    max_length: int = 256
    seed: int = 0
    checkpoint_every: int = 10
    max_grad_norm: float = 1.0
    """Gradients are clipped to this norm (0 turns it off): a spike cannot throw the run off."""


@dataclass(slots=True)
class TrainResult:
    adapter: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    """Training loss per step, over the whole run (a resumed run keeps the earlier ones)."""
    validation_before: float = math.nan
    validation_after: float = math.nan
    resumed_from: int = 0
    cancelled: bool = False


def render(tokenizer: Any, messages: list[dict[str, Any]], answer: bool) -> str:
    """The model's own chat template when it has one, else plain `role: text` lines."""
    if getattr(tokenizer, "chat_template", None):
        text: str = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=not answer
        )
        return text
    lines = [f"{m['role']}: {m.get('content') or ''}" for m in messages]
    return "\n".join(lines) + ("" if answer else "\nassistant:")


def _tokens(tokenizer: Any, ex: Example) -> tuple[list[int], list[int]]:
    """The prompt's token ids and the answer's (with the end-of-sequence token)."""
    prompt = tokenizer(render(tokenizer, ex.prompt, answer=False), add_special_tokens=True)
    answer = tokenizer(" " + ex.answer, add_special_tokens=False)
    return list(prompt["input_ids"]), [*answer["input_ids"], tokenizer.eos_token_id]


def encode(tokenizer: Any, ex: Example, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels; prompt tokens are masked (-100) so only the answer is learned."""
    prompt, answer = _tokens(tokenizer, ex)
    ids = prompt + answer
    labels = [-100] * len(prompt) + answer
    return ids[:max_length], labels[:max_length]


def lengths(tokenizer: Any, ex: Example) -> tuple[int, int]:
    """Prompt and answer tokens of an example as training sees them, before truncation."""
    prompt, answer = _tokens(tokenizer, ex)
    return len(prompt), len(answer)


def _batches(rows: list[tuple[list[int], list[int]]], size: int, pad: int) -> list[Any]:
    out = []
    for i in range(0, len(rows), size):
        chunk = rows[i : i + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, (a, b) in enumerate(chunk):
            ids[j, : len(a)] = torch.tensor(a)
            labels[j, : len(b)] = torch.tensor(b)
            mask[j, : len(a)] = 1
        out.append({"input_ids": ids, "labels": labels, "attention_mask": mask})
    return out


def _mean_loss(model: Any, batches: list[Any]) -> float:
    model.eval()
    with torch.no_grad():
        losses = [float(model(**b).loss) for b in batches]
    model.train()
    return sum(losses) / len(losses)


def load_tokenizer(base: Path) -> Any:
    base_fingerprint(base)  # refuses remote code before transformers reads anything
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(base: Path) -> tuple[Any, Any]:
    tokenizer = load_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base, trust_remote_code=False, dtype=torch.float32)
    return tokenizer, model


def _epochs(
    train: list[tuple[list[int], list[int]]], settings: LoraSettings, pad: int
) -> list[Any]:
    """Every batch of the run in order: each epoch shuffles the rows (seeded, so a resumed run
    sees the same order)."""
    order = random.Random(settings.seed)
    epochs = []
    for _ in range(settings.epochs):
        rows = train[:]
        order.shuffle(rows)
        epochs.extend(_batches(rows, settings.batch_size, pad))
    return epochs


def _save(checkpoint: Path, model: Any, optimiser: Any, result: TrainResult) -> None:
    state = {
        "adapter": get_peft_model_state_dict(model),
        "optimiser": optimiser.state_dict(),
        "step": result.steps,
        "losses": result.losses,
        "validation_before": result.validation_before,
    }
    torch.save(state, checkpoint)


def _restore(checkpoint: Path, model: Any, optimiser: Any, result: TrainResult) -> bool:
    """Load a checkpoint into the model, optimiser and result; False when there is none."""
    if not checkpoint.is_file():
        return False
    state = torch.load(checkpoint, weights_only=True)
    set_peft_model_state_dict(model, state["adapter"])
    optimiser.load_state_dict(state["optimiser"])
    result.steps = result.resumed_from = int(state["step"])
    result.losses = [float(x) for x in state["losses"]]
    result.validation_before = float(state["validation_before"])
    return True


def train_lora(
    base: Path,
    data: Split,
    out: Path,
    settings: LoraSettings = LoraSettings(),
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_step: Callable[[int, float], None] = lambda step, loss: None,
) -> TrainResult:
    """Train (or resume, when `out` holds a checkpoint) and save the adapter to `out/adapter`."""
    fingerprint = base_fingerprint(base)
    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    tokenizer, model = load_base(base)
    lora = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    train = [encode(tokenizer, ex, settings.max_length) for ex in data.train]
    held = _batches(
        [encode(tokenizer, ex, settings.max_length) for ex in data.validation],
        settings.batch_size,
        tokenizer.pad_token_id,
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=settings.learning_rate)
    out.mkdir(parents=True, exist_ok=True)
    result = TrainResult(adapter=out / "adapter", steps=0)
    checkpoint = out / CHECKPOINT
    if not _restore(checkpoint, model, optimiser, result):
        with model.disable_adapter():
            result.validation_before = _mean_loss(model, held)
    epochs = _epochs(train, settings, tokenizer.pad_token_id)
    model.train()
    for batch in epochs[result.steps :]:
        if should_stop():
            _save(checkpoint, model, optimiser, result)
            result.cancelled = True
            return result
        loss = model(**batch).loss
        loss.backward()
        if settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
        optimiser.step()
        optimiser.zero_grad()
        result.steps += 1
        value = float(loss.detach())
        result.losses.append(value)
        on_step(result.steps, value)
        if result.steps % settings.checkpoint_every == 0:
            _save(checkpoint, model, optimiser, result)
    result.validation_after = _mean_loss(model, held)
    model.save_pretrained(str(result.adapter))
    card = {"base_fingerprint": fingerprint, "base": str(base), "settings": asdict(settings)}
    (result.adapter / ADAPTER_CARD).write_text(json.dumps(card, indent=2))
    checkpoint.unlink(missing_ok=True)
    return result


def load_adapter(base: Path, adapter: Path) -> tuple[Any, Any]:
    """The base with the adapter applied; refused when the adapter was trained on another base."""
    card_path = adapter / ADAPTER_CARD
    if not card_path.is_file():
        raise AdapterMismatchError(f"{adapter}: no {ADAPTER_CARD}; not an opsgate adapter")
    card = json.loads(card_path.read_text())
    fingerprint = base_fingerprint(base)
    if card.get("base_fingerprint") != fingerprint:
        raise AdapterMismatchError(
            f"adapter {adapter.name} was trained on base {card.get('base')} "
            f"({card.get('base_fingerprint')}), not on {base} ({fingerprint})"
        )
    tokenizer, model = load_base(base)
    return tokenizer, PeftModel.from_pretrained(model, adapter)
