"""Base vs adapter on the validation split: a LoRA adapter trained on the tiny Llama answers the
held-back questions better than its base, as the evals scorers measure it; the scorers a job
may use are checked up front (no network, no judge model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.needs import import_or_need

import_or_need("torch", "torch's CPU build (scripts/ensure-ml-extras.sh)")
import_or_need("peft", "the tune extra (peft)")

from opsgate.evals.scorers import ScorerConfigError  # noqa: E402
from opsgate.tuning.data import Example, parse_lines, split  # noqa: E402
from opsgate.tuning.evaluate import DEFAULT_SCORERS, check_scorers, compare  # noqa: E402
from opsgate.tuning.generate import generate  # noqa: E402
from opsgate.tuning.lora import LoraSettings, load_adapter, load_base, train_lora  # noqa: E402
from opsgate.tuning.worker import evaluate  # noqa: E402
from tests.tuning.tiny import ALL_LINEAR, COLOURS, tiny_base  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")


def colour_lines() -> list[bytes]:
    """Each thing asked four ways (1 to 4 question marks): four conversations per thing, so
    the validation split holds questions about things the training side also teaches."""
    lines = []
    for n in range(4):
        for thing, colour in COLOURS.items():
            messages: list[dict[str, Any]] = [
                {
                    "role": "user",
                    "content": f"what colour is the {thing} " + " ".join("?" * (n + 1)),
                },
                {"role": "assistant", "content": f"the {thing} is {colour}"},
            ]
            lines.append(json.dumps({"messages": messages}).encode())
    return lines


def _exact(answers: list[str], examples: list[Example]) -> float:
    hits = [a.split() == ex.answer.split() for a, ex in zip(answers, examples, strict=True)]
    return sum(hits) / len(hits)


def test_the_adapter_beats_its_base_on_the_validation_split(tmp_path: Path) -> None:
    base = tiny_base(tmp_path / "base")
    data = split(parse_lines(colour_lines()), 0.25, seed="colours@1")
    assert len(data.validation) >= 3
    settings = LoraSettings(
        rank=8, alpha=16, epochs=10, batch_size=4, learning_rate=1e-2, target_modules=ALL_LINEAR
    )
    result = train_lora(base, data, tmp_path / "job", settings)

    raw = {"scorers": DEFAULT_SCORERS, "max_new_tokens": 8, "examples": 2}
    report = evaluate(base, result.adapter, data.validation, raw)
    assert report is not None and "error" not in report, report
    assert report["n"] == len(data.validation) and report["max_new_tokens"] == 8
    exact, overlap = report["scorers"]["exact"], report["scorers"]["overlap"]
    assert exact["adapter"] > exact["base"], exact
    assert overlap["adapter"] > overlap["base"], overlap
    assert exact["delta"] == pytest.approx(exact["adapter"] - exact["base"], abs=1e-3)
    assert exact["scored"] == len(data.validation) and exact["failed"] == 0

    # The figures are what the models answer: decode again, independently of the report.
    tokenizer, model = load_adapter(base, result.adapter)
    prompts = [ex.prompt for ex in data.validation]
    tuned = generate(model, tokenizer, prompts, 8)
    _, plain_model = load_base(base)
    plain = generate(plain_model, tokenizer, prompts, 8)
    assert exact["adapter"] == pytest.approx(_exact(tuned, data.validation), abs=1e-3)
    assert exact["base"] == pytest.approx(_exact(plain, data.validation), abs=1e-3)
    shown = report["examples"]
    assert len(shown) == 2
    assert [r["adapter"] for r in shown] == tuned[:2] and [r["base"] for r in shown] == plain[:2]
    assert [r["expected"] for r in shown] == [ex.answer for ex in data.validation[:2]]
    assert shown[0]["input"].startswith("what colour is the")


def test_generate_answers_without_the_prompt_or_special_tokens(tmp_path: Path) -> None:
    base = tiny_base(tmp_path / "base")
    tokenizer, model = load_base(base)
    prompts = [[{"role": "user", "content": f"what colour is the {t} ?"}] for t in COLOURS]
    answers = generate(model, tokenizer, prompts, 6, batch_size=2)  # batches of 2 and a 1
    one_by_one = [generate(model, tokenizer, [p], 6)[0] for p in prompts]
    assert answers == one_by_one  # left padding does not change an answer
    assert len(answers) == len(COLOURS)
    specials = set(tokenizer.all_special_tokens)
    for answer in answers:
        words = answer.split()
        assert len(words) <= 6 and not specials & set(words), answer
        assert not answer.startswith("user:")
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, tokenizer, prompts, 0)


def test_only_offline_scorers_pass_the_check() -> None:
    assert check_scorers(DEFAULT_SCORERS) == ["exact", "contains", "overlap"]
    rules = [{"type": "regex", "pattern": "blue"}, {"type": "length", "max": 40}]
    assert check_scorers(rules) == ["regex", "length"]
    named = [{"type": "embedding", "embedder": "local", "name": "minilm"}]
    assert check_scorers(named) == ["minilm"]  # named only: its model loads in the worker
    refused = {
        "judge": "cannot score a tuning job",
        "faithfulness": "cannot score a tuning job",
        "nope": "cannot score a tuning job",
        "hallucination": "cannot score a tuning job",
    }
    for spec, message in refused.items():
        with pytest.raises(ScorerConfigError, match=message):
            check_scorers([spec])
    with pytest.raises(ScorerConfigError, match="not local"):
        check_scorers([{"type": "embedding", "embedder": "gateway"}])
    with pytest.raises(ScorerConfigError, match="two scorers named 'exact'"):
        check_scorers(["exact", "exact"])
    with pytest.raises(ScorerConfigError, match="pattern"):
        check_scorers(["regex"])  # a rule scorer is built, so a missing parameter shows


async def test_compare_reports_failed_rows_and_means() -> None:
    examples = [
        Example([{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a b"}]),
        Example([{"role": "user", "content": "q2"}, {"role": "assistant", "content": "c"}]),
    ]
    out = await compare(
        examples, ["a b", "x"], ["a b", "c"], ["exact", {"type": "json", "name": "js"}], keep=1
    )
    assert out["n"] == 2
    assert out["scorers"]["exact"] == {
        "base": 0.5, "adapter": 1.0, "delta": 0.5, "scored": 2, "failed": 0,
    }  # fmt: skip
    assert out["scorers"]["js"]["adapter"] == 0.0  # "a b" is not JSON
    assert out["examples"] == [{"input": "q1", "expected": "a b", "base": "a b", "adapter": "a b"}]
    with pytest.raises(ValueError, match="one base and one adapter answer"):
        await compare(examples, ["a"], ["a", "b"], ["exact"])
