"""The cost engine: what one call cost under one price. Pure functions, Decimal only, exact.

A call's tokens (`tokens`: any object with the nine counts of tokens.md and `success`, e.g.
usage.records.CheckedRecord) follow OpenAI's inclusive convention: cache reads, cache writes and
audio are part of prompt_tokens; reasoning, audio and image output are part of completion_tokens.

    cost = ((prompt - cached - write_5m - write_1h - input_audio) x input + cached x cached_input
            + write_5m x cache_write_5m + write_1h x cache_write_1h + input_audio x input_audio
            + (completion - reasoning - output_audio - output_image) x output + reasoning x reasoning
            + output_audio x output_audio + output_image x output_image) / 10^6
           + price_per_call if the call succeeded

An empty price falls back: cached input, cache writes (5 minutes) and input audio to the input price,
the 1-hour cache write to the 5-minute one (else input), reasoning and audio/image output to the
output price. A version's long-context tiers replace every token price of a call whose prompt_tokens
exceed the tier's threshold (the highest such tier); the fee is not tiered. Nothing is rounded: a
price keeps at most 18 places, so a cost is a whole number of 10^-24 (core.money.COST_DECIMAL_PLACES).
"""

from collections.abc import Callable
from decimal import Decimal, Inexact, localcontext
from functools import lru_cache
from typing import NamedTuple, Protocol

from core.money import COST_DECIMAL_PLACES, MONEY_CONTEXT, PRICE_DECIMAL_PLACES, TOKENS_PER_PRICE_UNIT, cost_exact
from pricing.models import ModelPriceVersion, TokenPrices


class CallTokens(Protocol):
    prompt_tokens: int
    cached_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    input_audio_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    output_audio_tokens: int
    output_image_tokens: int
    success: bool


class KindPrices(NamedTuple):
    """The nine token prices of one price (or tier), fallbacks applied, in the formula's order."""

    input: Decimal
    cached_input: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    input_audio: Decimal
    output: Decimal
    reasoning: Decimal
    output_audio: Decimal
    output_image: Decimal


def _or(price: Decimal | None, fallback: Decimal) -> Decimal:
    return fallback if price is None else price


def token_prices_resolved(prices: TokenPrices) -> KindPrices:
    """Every kind's price, empty ones replaced by their fallback (tokens.md)."""
    given_input, given_output = prices.input_price_per_million, prices.output_price_per_million
    write_5m = _or(prices.cache_write_5m_price_per_million, given_input)
    return KindPrices(
        input=given_input,
        cached_input=_or(prices.cached_input_price_per_million, given_input),
        cache_write_5m=write_5m,
        cache_write_1h=_or(prices.cache_write_1h_price_per_million, write_5m),
        input_audio=_or(prices.input_audio_price_per_million, given_input),
        output=given_output,
        reasoning=_or(prices.reasoning_price_per_million, given_output),
        output_audio=_or(prices.output_audio_price_per_million, given_output),
        output_image=_or(prices.output_image_price_per_million, given_output),
    )


def prices_for_prompt(version: ModelPriceVersion, prompt_tokens: int) -> TokenPrices:
    """The version itself, or its highest tier whose threshold prompt_tokens exceeds (strictly)."""
    chosen: TokenPrices = version
    for tier in version.price_tiers():  # Lowest threshold first.
        if prompt_tokens > tier.above_prompt_tokens:
            chosen = tier
        else:
            break
    return chosen


def _token_counts(tokens: CallTokens) -> tuple[int, ...]:
    """Each kind's count, in KindPrices' order (plain input and plain output are what is left)."""
    cached, write_5m, write_1h = tokens.cached_tokens, tokens.cache_write_5m_tokens, tokens.cache_write_1h_tokens
    input_audio = tokens.input_audio_tokens
    reasoning, output_audio, output_image = (
        tokens.reasoning_tokens,
        tokens.output_audio_tokens,
        tokens.output_image_tokens,
    )
    return (
        tokens.prompt_tokens - cached - write_5m - write_1h - input_audio,
        cached,
        write_5m,
        write_1h,
        input_audio,
        tokens.completion_tokens - reasoning - output_audio - output_image,
        reasoning,
        output_audio,
        output_image,
    )


def call_cost(*, version: ModelPriceVersion, tokens: CallTokens) -> Decimal:
    """Cost of one call under `version`, exact (24 places; more only for a price with more than 18
    places, which pricing never stores)."""
    prices = token_prices_resolved(prices_for_prompt(version, tokens.prompt_tokens))
    with localcontext(MONEY_CONTEXT):
        amount = sum((count * price for count, price in zip(_token_counts(tokens), prices, strict=True)), Decimal(0))
        amount /= TOKENS_PER_PRICE_UNIT
        if tokens.success and version.price_per_call:
            amount += version.price_per_call
    try:
        return cost_exact(amount)
    except Inexact:
        return amount


# --- The same cost in integers, for ingestion: thousands of calls per batch at a few prices --------

PRICE_UNITS = 10**PRICE_DECIMAL_PLACES  # A stored price is a whole number of 10^-18.
# tokens x price (in 10^-18) / 10^6 tokens = a cost in 10^-24: COST_DECIMAL_PLACES is 18 + 6.
_FEE_UNITS = 10**COST_DECIMAL_PLACES


class IntegerRates(NamedTuple):
    """A price version as whole units: its nine token rates (10^-18 per million tokens, fallbacks
    applied), its tiers' (threshold, rates), highest threshold first, and its fee in 10^-24."""

    rates: tuple[int, ...]
    tiers: tuple[tuple[int, tuple[int, ...]], ...]
    fee: int


def _units(price: Decimal, per: int) -> int | None:
    scaled = Decimal(price) * per
    return int(scaled) if price >= 0 and scaled == scaled.to_integral_value() else None


def _kind_units(prices: TokenPrices) -> tuple[int, ...] | None:
    units = tuple(_units(price, PRICE_UNITS) for price in token_prices_resolved(prices))
    return None if None in units else units


def integer_rates(version: ModelPriceVersion) -> IntegerRates | None:
    """The version's prices as whole units, or None when one is not (more places than stored, or
    negative): call_cost then prices its calls."""
    with localcontext(MONEY_CONTEXT):
        rates = _kind_units(version)
        tiers = [(tier.above_prompt_tokens, _kind_units(tier)) for tier in version.price_tiers()]
        fee = _units(version.price_per_call or Decimal(0), _FEE_UNITS)
    if rates is None or fee is None or any(tier_rates is None for _above, tier_rates in tiers):
        return None
    return IntegerRates(rates, tuple(sorted(tiers, reverse=True)), fee)


def call_cost_at_rates(rates: IntegerRates, tokens: CallTokens) -> Decimal:
    """call_cost of one call, to the digit (tests/test_ingest_fast_paths.py holds the two to each other).
    Token counts are the record rules' (the parts never exceed their whole)."""
    return cost_function(rates)(tokens)


# Each kind's count attribute, in KindPrices' order; the first of each side is the whole it is part of.
_INPUT_KINDS = (
    "prompt_tokens",
    "cached_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
)
_OUTPUT_KINDS = ("completion_tokens", "reasoning_tokens", "output_audio_tokens", "output_image_tokens")


def _units_expression(kinds: tuple[int, ...]) -> str:
    """The formula's sum in units, as Python source over the call `t`: plain input is the prompt less
    its parts, so each part's coefficient is its own rate less the plain rate (parts billed as plain
    input vanish), and likewise on the output side. Only non-zero coefficients are read."""
    sides = ((_INPUT_KINDS, kinds[:5]), (_OUTPUT_KINDS, kinds[5:]))
    terms = []
    for names, rates in sides:
        whole_rate = rates[0]
        if whole_rate:
            terms.append(f"t.{names[0]} * {whole_rate}")
        terms += [
            f"t.{name} * {rate - whole_rate}"
            for name, rate in zip(names[1:], rates[1:], strict=True)
            if rate != whole_rate
        ]
    return " + ".join(terms) or "0"


@lru_cache(maxsize=4096)
def cost_function(rates: IntegerRates) -> Callable[[CallTokens], Decimal]:
    """call_cost_at_rates compiled for one version's rates: its tiers as branches from the highest
    threshold, each a single expression over the counts its rates make matter, the fee when it is
    not zero. Built once per distinct rates (a price book's versions share it across batches); the
    source holds only integers, so it is exactly the formula at these rates."""
    lines = ["def cost(t):"]
    branches = [(f"t.prompt_tokens > {above}", tier_rates) for above, tier_rates in rates.tiers]
    for n, (condition, tier_rates) in enumerate(branches):
        lines += [f"    {'if' if n == 0 else 'elif'} {condition}:", f"        units = {_units_expression(tier_rates)}"]
    indent = "    " if not branches else "        "
    if branches:
        lines.append("    else:")
    lines.append(f"{indent}units = {_units_expression(rates.rates)}")
    if rates.fee:
        lines += ["    if t.success:", f"        units += {rates.fee}"]
    lines.append(f"    return _decimal(units).scaleb({-COST_DECIMAL_PLACES}, _context)")
    namespace = {"_decimal": Decimal, "_context": MONEY_CONTEXT}
    exec("\n".join(lines), namespace)  # noqa: S102 (integers and attribute names of this module only)
    return namespace["cost"]
