"""What a request cost, in integer micro-dollars, so that sums over millions of traces are exact.

Prices are USD per 1M tokens, so a token count times a price is already micro-dollars: the
arithmetic stays in Decimal and is rounded (half up) once, at the end, never per component.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from opsgate.chat import Usage
from opsgate.config.schema import Price

MICROS_PER_USD = 1_000_000


def cost_decimal_micros(usage: Usage, price: Price | None) -> Decimal:
    """The exact, unrounded cost in micro-dollars; zero when the price is unknown.

    `cached_tokens` are part of `prompt_tokens` (OpenAI's convention, which the providers map
    to) and are billed at the cached-input price when the price has one, else at input price.
    """
    if price is None:
        return Decimal(0)
    prompt = max(usage.prompt_tokens, 0)
    cached = min(max(usage.cached_tokens, 0), prompt)
    completion = max(usage.completion_tokens, 0)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    return (prompt - cached) * price.input + cached * cached_price + completion * price.output


def cost_micros(usage: Usage, price: Price | None) -> int:
    """The cost of `usage` at `price` in micro-dollars (1 USD = 1_000_000), rounded half up."""
    exact = cost_decimal_micros(usage, price)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def micros_to_usd(micros: int) -> Decimal:
    """Micro-dollars as an exact Decimal amount of USD, for display and headers."""
    return Decimal(micros) / MICROS_PER_USD
