"""Greedy answers from a causal LM (a base, or a base with its adapter) to chat prompts.

The prompt is rendered exactly as training rendered it (`lora.render`), so the model answers in
the shape it learned; the answer is decoded without the prompt and without special tokens.
Greedy decoding, so one model gives one answer: base vs adapter (evaluation) and teacher answers
(distillation) are reproducible. Prompts go in batches, padded on the left so that every row's
answer starts right after its own prompt.
"""

from __future__ import annotations

from typing import Any

import torch

from opsgate.tuning.lora import render

__all__ = ["generate"]

BATCH = 8


def generate(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict[str, Any]]],
    max_new_tokens: int,
    *,
    batch_size: int = BATCH,
) -> list[str]:
    """One answer per conversation (the messages before the answer), in order."""
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    answers: list[str] = []
    if tokenizer.pad_token_id is None:  # as `lora.load_base` does: pad with end-of-sequence
        tokenizer.pad_token = tokenizer.eos_token
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(conversations), batch_size):
            chunk = conversations[i : i + batch_size]
            answers.extend(_batch(model, tokenizer, chunk, max_new_tokens))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def _batch(
    model: Any, tokenizer: Any, chunk: list[list[dict[str, Any]]], max_new_tokens: int
) -> list[str]:
    prompts = [render(tokenizer, messages, answer=False) for messages in chunk]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=True)
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    width = inputs["input_ids"].shape[1]
    texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    return [str(t).strip() for t in texts]
