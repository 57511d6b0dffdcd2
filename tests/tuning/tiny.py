"""A tiny Llama-architecture base model made on the spot (random weights, a word-level
tokenizer) and a toy task it can learn in a few dozen CPU steps: what colour things are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
COLOURS = {"sky": "blue", "grass": "green", "sun": "yellow", "snow": "white", "coal": "black"}
TOY_SETTINGS = {
    "rank": 8,
    "alpha": 16,
    "epochs": 10,
    "batch_size": 4,
    "learning_rate": 1e-2,
    "target_modules": list(ALL_LINEAR),
}
"""LoRA settings under which the tiny base learns the colours (the API tests' job body)."""
WORDS = ["user", "assistant", ":", "what", "colour", "is", "the", "?", *COLOURS, *COLOURS.values()]


def tiny_base(folder: Path, seed: int = 0) -> Path:
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
        # Wide enough initial weights that a frozen head can still express a confident answer
        # (at the default 0.02, normed hidden states times the head cap logits near 0.6).
        initializer_range=0.3,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def toy_lines() -> list[bytes]:
    lines = []
    for _ in range(4):
        for thing, colour in COLOURS.items():
            messages: list[dict[str, Any]] = [
                {"role": "user", "content": f"what colour is the {thing} ?"},
                {"role": "assistant", "content": f"the {thing} is {colour}"},
            ]
            lines.append(json.dumps({"messages": messages}).encode())
    return lines


def answer_probability(tokenizer: Any, model: Any, thing: str, colour: str) -> tuple[float, str]:
    """The model's probability of `colour` right after "the <thing> is", and its top token."""
    text = f"user: what colour is the {thing} ?\nassistant: the {thing} is"
    with torch.no_grad():
        logits = model(**tokenizer(text, return_tensors="pt")).logits[0, -1]
    probs = logits.softmax(-1)
    top = tokenizer.convert_ids_to_tokens(int(probs.argmax()))
    return float(probs[tokenizer.convert_tokens_to_ids(colour)]), str(top)
