"""The cost engine: what one call cost under one price. Pure functions, Decimal only."""

from decimal import Decimal
from typing import NamedTuple

from core.money import COST_DECIMAL_PLACES, PRICE_DECIMAL_PLACES, TOKENS_PER_PRICE_UNIT, quantize_cost
from pricing.models import ModelPriceVersion


def call_cost(
    *,
    version: ModelPriceVersion,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
) -> Decimal:
    """Cost of one call. Cached tokens are part of prompt_tokens (OpenAI's convention) and are
    charged at the cached price where the model has one. Reasoning tokens are part of
    completion_tokens and cost the output price."""
    cached_price = version.cached_input_price_per_million
    if cached_price is None:
        cached_price = version.input_price_per_million
    uncached_prompt = prompt_tokens - cached_tokens
    amount = (
        uncached_prompt * version.input_price_per_million
        + cached_tokens * cached_price
        + completion_tokens * version.output_price_per_million
    ) / TOKENS_PER_PRICE_UNIT
    return quantize_cost(amount)


# --- The same cost in integers, for ingestion: thousands of calls per batch at a few prices --------

MICROS_PER_UNIT = 10**PRICE_DECIMAL_PLACES  # A stored price is a whole number of millionths.
# cost = tokens x price (in micro units) / 10^6 tokens / 10^6 micro units, rounded to 10^-8.
_UNITS_PER_COST_QUANTUM = int(TOKENS_PER_PRICE_UNIT) * MICROS_PER_UNIT // 10**COST_DECIMAL_PLACES


class IntegerRates(NamedTuple):
    """A price version's three prices as whole millionths."""

    input: int
    cached_input: int
    output: int


def _micros(price: Decimal) -> int | None:
    micros = price.scaleb(PRICE_DECIMAL_PLACES)
    return int(micros) if micros == micros.to_integral_value() and price >= 0 else None


def integer_rates(version: ModelPriceVersion) -> IntegerRates | None:
    """The version's prices as whole millionths, or None when one is not (more places than stored,
    or negative): call_cost then prices its calls."""
    cached_price = version.cached_input_price_per_million
    if cached_price is None:
        cached_price = version.input_price_per_million
    rates = (_micros(version.input_price_per_million), _micros(cached_price), _micros(version.output_price_per_million))
    return None if None in rates else IntegerRates(*rates)


def call_cost_at_rates(rates: IntegerRates, prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> Decimal:
    """call_cost of one call, to the digit (tests/test_ingest_fast_paths.py holds the two to each other):
    the exact amount is a whole number of 10^-12 units, rounded half to even to 10^-8 in integers.
    Token counts are the record rules' (0 <= cached <= prompt)."""
    units = (
        (prompt_tokens - cached_tokens) * rates.input + cached_tokens * rates.cached_input
    ) + completion_tokens * rates.output
    quanta, rest = divmod(units, _UNITS_PER_COST_QUANTUM)
    if rest * 2 > _UNITS_PER_COST_QUANTUM or (rest * 2 == _UNITS_PER_COST_QUANTUM and quanta & 1):
        quanta += 1
    return Decimal(quanta).scaleb(-COST_DECIMAL_PLACES)
