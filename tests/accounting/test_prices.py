from __future__ import annotations

from decimal import Decimal

import pytest

from opsgate.accounting import (
    BUILTIN_PRICES,
    PRICES_AS_OF,
    PriceTable,
    builtin_table,
    lookup_price,
    normalize_model_id,
    resolve_price,
)
from opsgate.config.schema import Price


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("GPT-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o3-2025-04-16", "o3"),
        ("o1-preview", "o1"),
        ("text-embedding-3-small", "text-embedding-3-small"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("models/gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini-2.0-flash-lite", "gemini-2.0-flash-lite"),
        ("gemini-2.5-pro", "gemini-2.5-pro"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", "llama-3.1-8b"),
        ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b"),
        ("llama3.1:8b", "llama-3.1-8b"),
        ("llama-3.3-70b-versatile", "llama-3.3-70b"),
        ("meta.llama3-1-70b-instruct-v1:0", "llama-3.1-70b"),
        ("mistral:latest", "mistral-7b"),
        ("mistral-large-latest", "mistral-large"),
        ("open-mixtral-8x7b", "mixtral-8x7b"),
        ("Qwen/Qwen2.5-72B-Instruct", "qwen2.5-72b"),
        ("qwen2.5:7b", "qwen2.5-7b"),
        ("deepseek-chat", "deepseek-chat"),
        ("openai/gpt-oss-120b", "gpt-oss-120b"),
    ],
)
def test_lookup_tolerates_suffixes_prefixes_and_aliases(model: str, name: str) -> None:
    assert builtin_table().match(model) == name
    assert lookup_price(model) == BUILTIN_PRICES[name]


@pytest.mark.parametrize(
    "model",
    ["gpt-4oo", "gpt-5x", "claude", "my-finetune", "", "o", "llama", "text-embedding-3"],
)
def test_unknown_or_partial_ids_are_not_priced(model: str) -> None:
    assert lookup_price(model) is None


def test_prefix_must_end_at_a_separator() -> None:
    # "gpt-4" must not price gpt-4o or gpt-4.1 (they are listed separately, and cheaper).
    assert builtin_table().match("gpt-4o") == "gpt-4o"
    assert builtin_table().match("gpt-4.1") == "gpt-4.1"
    table = PriceTable({"gpt-4": Price(input=Decimal(30), output=Decimal(60))})
    assert table.lookup("gpt-4o") is None
    assert table.lookup("gpt-4.1") is None
    assert table.lookup("gpt-4-0613") is not None


def test_known_list_prices() -> None:
    mini = BUILTIN_PRICES["gpt-4o-mini"]
    assert (mini.input, mini.cached_input, mini.output) == (
        Decimal("0.15"),
        Decimal("0.075"),
        Decimal("0.60"),
    )
    sonnet = BUILTIN_PRICES["claude-sonnet-4-5"]
    assert (sonnet.input, sonnet.output) == (Decimal(3), Decimal(15))
    assert BUILTIN_PRICES["text-embedding-3-small"].output == 0
    assert PRICES_AS_OF.isoformat() == "2026-11-01"


def test_table_is_sane() -> None:
    for name, price in BUILTIN_PRICES.items():
        assert name == name.lower()
        assert price.input >= 0
        assert price.output >= 0
        if price.cached_input is not None:
            assert price.cached_input <= price.input, name
        # Each canonical name finds itself.
        assert builtin_table().match(name) == name


def test_deployment_price_overrides_the_table() -> None:
    own = Price(input=Decimal(0), output=Decimal(0))
    assert resolve_price("gpt-4o", own) is own
    assert resolve_price("gpt-4o") == BUILTIN_PRICES["gpt-4o"]
    assert resolve_price("my-finetune") is None


def test_alias_to_unknown_model_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        PriceTable({}, {"x": "y"})


def test_normalize_model_id() -> None:
    assert normalize_model_id(" Meta-Llama/Meta-Llama-3.1-8B ") == "llama-3.1-8b"
    assert normalize_model_id("llama3.2:3b") == "llama-3.2-3b"
    assert normalize_model_id("eu.anthropic.claude-3-haiku") == "claude-3-haiku"
