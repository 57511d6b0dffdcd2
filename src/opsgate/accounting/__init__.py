"""Accounting: token counts, list prices and exact cost of each request."""

from opsgate.accounting.cost import MICROS_PER_USD, cost_decimal_micros, cost_micros, micros_to_usd
from opsgate.accounting.prices import (
    BUILTIN_PRICES,
    PRICES_AS_OF,
    PriceTable,
    builtin_table,
    lookup_price,
    normalize_model_id,
    resolve_price,
)
from opsgate.accounting.tokens import (
    ESTIMATE,
    Tokenizer,
    count_embedding_tokens,
    count_message_tokens,
    count_prompt_tokens,
    count_text_tokens,
    estimate_text_tokens,
    get_tokenizer,
)

__all__ = [
    "BUILTIN_PRICES",
    "ESTIMATE",
    "MICROS_PER_USD",
    "PRICES_AS_OF",
    "PriceTable",
    "Tokenizer",
    "builtin_table",
    "cost_decimal_micros",
    "cost_micros",
    "count_embedding_tokens",
    "count_message_tokens",
    "count_prompt_tokens",
    "count_text_tokens",
    "estimate_text_tokens",
    "get_tokenizer",
    "lookup_price",
    "micros_to_usd",
    "normalize_model_id",
    "resolve_price",
]
