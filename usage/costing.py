"""The cost engine: what one call cost under one price. Pure functions, Decimal only."""

from decimal import Decimal

from core.money import TOKENS_PER_PRICE_UNIT, quantize_cost
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
