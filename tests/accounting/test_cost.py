from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from opsgate.accounting import cost_decimal_micros, cost_micros, lookup_price, micros_to_usd
from opsgate.chat import Usage
from opsgate.config.schema import Price

MINI = Price(input=Decimal("0.15"), output=Decimal("0.60"), cached_input=Decimal("0.075"))


def test_cost_in_micro_dollars() -> None:
    # 1000 input at $0.15/M = 150 micro-dollars; 500 output at $0.60/M = 300.
    assert cost_micros(Usage(prompt_tokens=1000, completion_tokens=500), MINI) == 450


def test_cached_tokens_billed_at_cached_price() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=400)
    # 600 * 0.15 + 400 * 0.075 = 90 + 30
    assert cost_micros(usage, MINI) == 120


def test_cached_tokens_at_input_price_when_no_cached_price() -> None:
    price = Price(input=Decimal("0.15"), output=Decimal("0.60"))
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=400)
    assert cost_micros(usage, price) == 150


def test_rounding_happens_once_half_up() -> None:
    # Each part is 0.5 micro-dollars: rounding per part would give 2, once gives 1.
    price = Price(input=Decimal("0.5"), output=Decimal("0.5"))
    assert cost_decimal_micros(Usage(prompt_tokens=1, completion_tokens=1), price) == 1
    assert cost_micros(Usage(prompt_tokens=1, completion_tokens=1), price) == 1
    assert cost_micros(Usage(prompt_tokens=1), price) == 1  # 0.5 rounds up
    assert cost_micros(Usage(prompt_tokens=1), Price(input=Decimal("0.49"), output=0)) == 0


def test_unknown_price_costs_nothing() -> None:
    assert cost_micros(Usage(prompt_tokens=10**6, completion_tokens=10**6), None) == 0


def test_cached_more_than_prompt_is_clamped() -> None:
    usage = Usage(prompt_tokens=10, cached_tokens=50)
    assert cost_micros(usage, MINI) == cost_micros(Usage(prompt_tokens=10, cached_tokens=10), MINI)


def test_million_tokens_cost_the_list_price() -> None:
    price = lookup_price("gpt-4o")
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert micros_to_usd(cost_micros(usage, price)) == Decimal("12.50")


@given(
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.decimals(0, 1000, places=4),
    st.decimals(0, 1000, places=4),
    st.one_of(st.none(), st.decimals(0, 1000, places=4)),
)
def test_cost_matches_exact_arithmetic(
    prompt: int,
    completion: int,
    cached: int,
    inp: Decimal,
    out: Decimal,
    cin: Decimal | None,
) -> None:
    cached = min(cached, prompt)
    price = Price(input=inp, output=out, cached_input=cin)
    usd = (
        Decimal(prompt - cached) * inp
        + Decimal(cached) * (inp if cin is None else cin)
        + Decimal(completion) * out
    ) / Decimal(10**6)
    expected = int((usd * 10**6).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert cost_micros(Usage(prompt, completion, cached), price) == expected
