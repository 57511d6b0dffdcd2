"""Built-in list prices, so cost shows up without anyone typing a price into the config.

The table holds public list prices (USD per 1M tokens: input, cached input, output) for common
hosted models, compiled from the providers' price pages. Prices change: a deployment's `price`
in the config always wins, and `PRICES_AS_OF` says how old the table is. Open-weight models
(Llama, Mistral, Qwen, DeepSeek, gpt-oss) carry a typical hosted price; a self-hosted deployment
should set `price: {input: 0, output: 0}` (or its real cost) to override it.

Not modelled: long-context tiers (above 200k tokens some providers charge more), batch
discounts, Anthropic's cache-write premium (writes are billed at the input price) and audio or
image output tokens.

Lookup tolerates how upstreams spell ids: case, a provider or org prefix
(`openai/gpt-4o`, `models/gemini-2.0-flash`, `meta-llama/Meta-Llama-3.1-8B-Instruct`), Bedrock
ids (`us.anthropic.claude-3-5-haiku-20241022-v1:0`), Ollama tags (`llama3.1:8b`) and dated or
versioned suffixes (`gpt-4o-mini-2024-07-18`), by the longest known prefix that ends at a
separator, so `gpt-4.1-mini-...` is never priced as `gpt-4.1`, nor `gpt-4o` as `gpt-4`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from functools import cache, lru_cache

from opsgate.config.schema import Price

PRICES_AS_OF = date(2026, 11, 1)

# name: (input, cached input or None, output), USD per 1M tokens.
_RAW: dict[str, tuple[str, str | None, str]] = {
    # OpenAI
    "gpt-5": ("1.25", "0.125", "10.00"),
    "gpt-5-mini": ("0.25", "0.025", "2.00"),
    "gpt-5-nano": ("0.05", "0.005", "0.40"),
    "gpt-4.1": ("2.00", "0.50", "8.00"),
    "gpt-4.1-mini": ("0.40", "0.10", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.025", "0.40"),
    "gpt-4.5-preview": ("75.00", "37.50", "150.00"),
    "gpt-4o": ("2.50", "1.25", "10.00"),
    "gpt-4o-2024-05-13": ("5.00", None, "15.00"),
    "gpt-4o-mini": ("0.15", "0.075", "0.60"),
    "chatgpt-4o-latest": ("5.00", None, "15.00"),
    "gpt-4-turbo": ("10.00", None, "30.00"),
    "gpt-4": ("30.00", None, "60.00"),
    "gpt-3.5-turbo": ("0.50", None, "1.50"),
    "o1": ("15.00", "7.50", "60.00"),
    "o1-mini": ("1.10", "0.55", "4.40"),
    "o1-pro": ("150.00", None, "600.00"),
    "o3": ("2.00", "0.50", "8.00"),
    "o3-mini": ("1.10", "0.55", "4.40"),
    "o3-pro": ("20.00", None, "80.00"),
    "o4-mini": ("1.10", "0.275", "4.40"),
    "text-embedding-3-small": ("0.02", None, "0"),
    "text-embedding-3-large": ("0.13", None, "0"),
    "text-embedding-ada-002": ("0.10", None, "0"),
    # Anthropic (cached input = cache read)
    "claude-opus-4-5": ("5.00", "0.50", "25.00"),
    "claude-opus-4-1": ("15.00", "1.50", "75.00"),
    "claude-opus-4": ("15.00", "1.50", "75.00"),
    "claude-sonnet-4-5": ("3.00", "0.30", "15.00"),
    "claude-sonnet-4": ("3.00", "0.30", "15.00"),
    "claude-haiku-4-5": ("1.00", "0.10", "5.00"),
    "claude-3-7-sonnet": ("3.00", "0.30", "15.00"),
    "claude-3-5-sonnet": ("3.00", "0.30", "15.00"),
    "claude-3-5-haiku": ("0.80", "0.08", "4.00"),
    "claude-3-opus": ("15.00", "1.50", "75.00"),
    "claude-3-haiku": ("0.25", "0.03", "1.25"),
    # Google (prompts up to 200k tokens)
    "gemini-2.5-pro": ("1.25", "0.125", "10.00"),
    "gemini-2.5-flash": ("0.30", "0.03", "2.50"),
    "gemini-2.5-flash-lite": ("0.10", "0.01", "0.40"),
    "gemini-2.0-flash": ("0.10", "0.025", "0.40"),
    "gemini-2.0-flash-lite": ("0.075", None, "0.30"),
    "gemini-1.5-pro": ("1.25", None, "5.00"),
    "gemini-1.5-flash": ("0.075", None, "0.30"),
    "gemini-embedding-001": ("0.15", None, "0"),
    # Open-weight models, typical hosted (serverless) prices
    "llama-4-maverick": ("0.27", None, "0.85"),
    "llama-4-scout": ("0.18", None, "0.59"),
    "llama-3.3-70b": ("0.88", None, "0.88"),
    "llama-3.2-1b": ("0.06", None, "0.06"),
    "llama-3.2-3b": ("0.06", None, "0.06"),
    "llama-3.1-8b": ("0.18", None, "0.18"),
    "llama-3.1-70b": ("0.88", None, "0.88"),
    "llama-3.1-405b": ("3.50", None, "3.50"),
    "llama-3-8b": ("0.20", None, "0.20"),
    "llama-3-70b": ("0.90", None, "0.90"),
    "mistral-large": ("2.00", None, "6.00"),
    "mistral-medium": ("0.40", None, "2.00"),
    "mistral-small": ("0.10", None, "0.30"),
    "mistral-nemo": ("0.15", None, "0.15"),
    "mistral-7b": ("0.20", None, "0.20"),
    "mixtral-8x7b": ("0.60", None, "0.60"),
    "mixtral-8x22b": ("1.20", None, "1.20"),
    "ministral-8b": ("0.10", None, "0.10"),
    "ministral-3b": ("0.04", None, "0.04"),
    "codestral": ("0.30", None, "0.90"),
    "qwen3-235b-a22b": ("0.20", None, "0.60"),
    "qwen3-32b": ("0.30", None, "0.60"),
    "qwen2.5-72b": ("1.20", None, "1.20"),
    "qwen2.5-coder-32b": ("0.80", None, "0.80"),
    "qwen2.5-7b": ("0.30", None, "0.30"),
    "deepseek-chat": ("0.28", "0.028", "0.42"),
    "deepseek-reasoner": ("0.28", "0.028", "0.42"),
    "gpt-oss-120b": ("0.15", None, "0.60"),
    "gpt-oss-20b": ("0.05", None, "0.20"),
    # The built-in simulator, priced like gpt-4o-mini so demos show plausible costs.
    "opsgate-simulated": ("0.15", "0.075", "0.60"),
}

# Other spellings of the same model; they take part in prefix matching like names do.
_ALIASES: dict[str, str] = {
    "open-mistral-7b": "mistral-7b",
    "open-mistral-nemo": "mistral-nemo",
    "open-mixtral-8x7b": "mixtral-8x7b",
    "open-mixtral-8x22b": "mixtral-8x22b",
    "mistral": "mistral-7b",
    "mixtral": "mixtral-8x7b",
    "llama-3-1-8b": "llama-3.1-8b",
    "llama-3-1-70b": "llama-3.1-70b",
    "llama-3-3-70b": "llama-3.3-70b",
    "qwen-2.5-72b": "qwen2.5-72b",
    "qwen-2.5-7b": "qwen2.5-7b",
    "qwen-2.5-coder-32b": "qwen2.5-coder-32b",
    "claude-3-5-sonnet-latest": "claude-3-5-sonnet",
    "claude-3-5-haiku-latest": "claude-3-5-haiku",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet",
}


def _price(raw: tuple[str, str | None, str]) -> Price:
    inp, cached, out = raw
    return Price(
        input=Decimal(inp),
        output=Decimal(out),
        cached_input=None if cached is None else Decimal(cached),
    )


BUILTIN_PRICES: Mapping[str, Price] = {name: _price(raw) for name, raw in _RAW.items()}
"""Canonical model name -> list price, as of `PRICES_AS_OF`."""

_SEPARATORS = frozenset("-@_")
_BEDROCK = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic|meta|mistral|amazon|cohere|ai21|deepseek)\.")
_OLLAMA_LLAMA = re.compile(r"^llama(\d)")


def normalize_model_id(model: str) -> str:
    """The upstream id in the table's spelling: lower case, no org prefix, `-` for tags."""
    name = model.strip().lower()
    name = name.rsplit("/", 1)[-1]
    name = _BEDROCK.sub("", name)
    name = name.removeprefix("meta-")
    name = _OLLAMA_LLAMA.sub(r"llama-\1", name)
    return name.replace(":", "-").replace(" ", "-")


class PriceTable:
    """Prices by model name, looked up by the longest name that prefixes the id at a separator."""

    def __init__(
        self, prices: Mapping[str, Price], aliases: Mapping[str, str] | None = None
    ) -> None:
        self._prices = dict(prices)
        keys = {name.lower(): name for name in self._prices}
        for alias, target in (aliases or {}).items():
            if target not in self._prices:
                raise ValueError(f"alias {alias!r} points at unknown model {target!r}")
            keys[alias.lower()] = target
        # Longest first, so the first prefix that fits is the most specific.
        self._keys = sorted(keys.items(), key=lambda kv: len(kv[0]), reverse=True)
        self._match = lru_cache(maxsize=1024)(self._match_uncached)

    def __len__(self) -> int:
        return len(self._prices)

    def __contains__(self, name: object) -> bool:
        return name in self._prices

    def match(self, model: str) -> str | None:
        """The canonical table name that prices `model`, or None when nothing fits."""
        return self._match(model)

    def lookup(self, model: str) -> Price | None:
        name = self._match(model)
        return None if name is None else self._prices[name]

    def _match_uncached(self, model: str) -> str | None:
        candidates = dict.fromkeys([model.strip().lower(), normalize_model_id(model)])
        for candidate in candidates:
            for key, name in self._keys:
                if candidate.startswith(key) and (
                    len(candidate) == len(key) or candidate[len(key)] in _SEPARATORS
                ):
                    return name
        return None


@cache
def builtin_table() -> PriceTable:
    """The built-in table, built on first use."""
    return PriceTable(BUILTIN_PRICES, _ALIASES)


def lookup_price(model: str) -> Price | None:
    """The built-in list price for an upstream model id, or None when it is not known."""
    return builtin_table().lookup(model)


def resolve_price(model: str, override: Price | None = None) -> Price | None:
    """The price to bill: the deployment's configured `price` when set, else the list price."""
    return override if override is not None else lookup_price(model)
