"""LoRA on a tiny Llama-architecture model made in the test (random weights, a word-level
tokenizer): the loss falls on a toy task, the adapter saves and loads, a cancelled run resumes
from its checkpoint, remote code and an adapter for another base are refused."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.fixtures.needs import import_or_need

torch = import_or_need("torch", "torch's CPU build (scripts/ensure-ml-extras.sh)")
import_or_need("peft", "the tune extra (peft)")

from opsgate.tuning.data import Example, TrainingDataError, parse_lines, split  # noqa: E402
from opsgate.tuning.lora import (  # noqa: E402
    AdapterMismatchError,
    BaseModelError,
    LoraSettings,
    load_adapter,
    load_base,
    train_lora,
)
from tests.tuning.tiny import ALL_LINEAR, answer_probability, tiny_base, toy_lines  # noqa: E402

# peft 0.21 calls a transformers 5 property deprecated in favour of is_activation_checkpointing.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")


def test_bad_training_data_is_refused_before_training() -> None:
    with pytest.raises(TrainingDataError, match="line 2: not JSON"):
        parse_lines([toy_lines()[0], b"{nope"])
    with pytest.raises(TrainingDataError, match="last message must be the assistant"):
        parse_lines([b'{"messages": [{"role": "user", "content": "a"}, {"role": "user"}]}'])
    with pytest.raises(TrainingDataError, match="1 examples: at least 4"):
        parse_lines(toy_lines()[:1])


def test_split_keeps_a_conversation_on_one_side() -> None:
    examples = parse_lines(toy_lines())
    parts = split(examples, 0.2)
    train_keys = {e.conversation_key() for e in parts.train}
    held_keys = {e.conversation_key() for e in parts.validation}
    assert train_keys and held_keys and not train_keys & held_keys
    assert len(parts.train) + len(parts.validation) == len(examples)


def test_lora_learns_saves_loads_and_refuses_another_base(tmp_path: Path) -> None:
    base = tiny_base(tmp_path / "base")
    examples = parse_lines(toy_lines())
    data = split(examples, 0.2)
    settings = LoraSettings(
        rank=8, alpha=16, epochs=10, batch_size=4, learning_rate=1e-2, target_modules=ALL_LINEAR
    )
    result = train_lora(base, data, tmp_path / "job", settings)
    assert not result.cancelled and result.steps == len(result.losses) > 10
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < first / 2, (first, last)
    assert result.validation_after < result.validation_before
    assert (result.adapter / "adapter_model.safetensors").is_file()

    # What the adapter learned, read off the distribution at the answer position rather than from
    # a greedy decode (which a near-tie with a special token can derail): for every trained
    # question the colour is the adapter's most likely next token, far likelier than under the base.
    tokenizer, model = load_adapter(base, result.adapter)
    _, plain = load_base(base)
    trained = {ex.answer.split()[1]: ex.answer.split()[-1] for ex in data.train}
    assert len(trained) >= 3
    for thing, colour in trained.items():
        p_adapter, top = answer_probability(tokenizer, model, thing, colour)
        p_base, _ = answer_probability(tokenizer, plain, thing, colour)
        assert top == colour and p_adapter > 0.5 and p_adapter > 5 * p_base, (thing, p_adapter)
    prompt = tokenizer("user: what colour is the sky ?\nassistant:", return_tensors="pt")
    specials = [[i] for i in tokenizer.all_special_ids]
    out = model.generate(**prompt, max_new_tokens=4, do_sample=False, bad_words_ids=specials)
    assert "blue" in tokenizer.decode(out[0, prompt["input_ids"].shape[1] :]).split()

    other = tiny_base(tmp_path / "other", seed=1)
    (other / "config.json").write_text(
        (other / "config.json").read_text().replace('"hidden_act"', '"_note": "v2", "hidden_act"')
    )
    with pytest.raises(AdapterMismatchError, match="was trained on base"):
        load_adapter(other, result.adapter)


def test_cancelled_job_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    base = tiny_base(tmp_path / "base")
    data = split(parse_lines(toy_lines()), 0.2)
    settings = LoraSettings(rank=4, alpha=8, epochs=4, batch_size=4, checkpoint_every=2)
    stop_at = 5
    first = train_lora(
        base, data, tmp_path / "job", settings, should_stop=lambda: len(seen) >= stop_at,
        on_step=lambda step, loss: seen.append(step),
    ) if (seen := []) is not None else None  # fmt: skip
    assert first is not None and first.cancelled and first.steps == stop_at
    assert (tmp_path / "job" / "checkpoint.pt").is_file()
    resumed = train_lora(base, data, tmp_path / "job", settings)
    assert resumed.resumed_from == stop_at and not resumed.cancelled
    assert resumed.losses[:stop_at] == first.losses
    straight = train_lora(base, data, tmp_path / "straight", settings)
    assert resumed.steps == straight.steps
    assert all(
        math.isclose(a, b, rel_tol=1e-4)
        for a, b in zip(resumed.losses, straight.losses, strict=True)
    )


def test_remote_code_and_missing_base_are_refused(tmp_path: Path) -> None:
    base = tiny_base(tmp_path / "base")
    data = split(parse_lines(toy_lines()), 0.2)
    (base / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(BaseModelError, match="trust_remote_code is never enabled"):
        train_lora(base, data, tmp_path / "job")
    with pytest.raises(BaseModelError, match="no such folder"):
        train_lora(tmp_path / "missing", data, tmp_path / "job")
    assert Example([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])


def test_the_cli_draws_a_loss_curve_in_one_line() -> None:
    from opsgate.cli.tuning import sparkline

    assert sparkline([]) == "-"
    assert sparkline([4.0, 3.0, 2.0, 1.0]) == "█▆▃▁"
    assert len(sparkline([float(i % 7) for i in range(1000)], width=40)) <= 40
