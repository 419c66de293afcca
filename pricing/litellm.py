"""Reading a price map in LiteLLM's JSON format (model_prices_and_context_window.json).

Each entry gives USD costs per single token: input_cost_per_token, output_cost_per_token and,
where the provider has one, cache_read_input_token_cost. Numbers are parsed as Decimal straight
from the JSON text, so 2.5e-06 becomes exactly 2.50 per million, never a float approximation.
"""

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from core.money import PRICE_DECIMAL_PLACES, TOKENS_PER_PRICE_UNIT
from pricing.models import ModelType
from pricing.providers import provider_canonical

LITELLM_CURRENCY = "USD"
_PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_DECIMAL_PLACES)
_MODE_TO_TYPE = {
    "chat": ModelType.CHAT,
    "completion": ModelType.CHAT,
    "responses": ModelType.CHAT,
    "embedding": ModelType.EMBEDDING,
    "image_generation": ModelType.IMAGE,
}


class PriceMapError(ValueError):
    """The file is not a LiteLLM price map (the message says where)."""


@dataclass(frozen=True)
class PriceQuote:
    model_name: str
    provider: str
    model_type: str
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    cached_input_price_per_million: Decimal | None
    currency: str = LITELLM_CURRENCY


def _per_million(entry: dict, key: str, model_name: str) -> Decimal | None:
    value = entry.get(key)
    if value is None:
        return None
    try:
        per_million = (Decimal(value) * TOKENS_PER_PRICE_UNIT).quantize(_PRICE_QUANTUM)
    except (InvalidOperation, TypeError) as error:
        raise PriceMapError(f"{model_name}.{key}: not a number ({value!r})") from error
    if per_million < 0:
        raise PriceMapError(f"{model_name}.{key}: negative price ({value})")
    return per_million


def _quote(model_name: str, entry: dict) -> PriceQuote | None:
    input_price = _per_million(entry, "input_cost_per_token", model_name)
    output_price = _per_million(entry, "output_cost_per_token", model_name)
    if input_price is None or output_price is None:
        return None  # Priced per image, second or character: not a token price.
    return PriceQuote(
        model_name=model_name,
        provider=provider_canonical(str(entry.get("litellm_provider") or "unknown"))[:50],
        model_type=_MODE_TO_TYPE.get(entry.get("mode"), ModelType.CHAT),
        input_price_per_million=input_price,
        output_price_per_million=output_price,
        cached_input_price_per_million=_per_million(entry, "cache_read_input_token_cost", model_name),
    )


def litellm_price_map_parse(*, text: str) -> dict[str, PriceQuote]:
    """Token prices by model name. Entries without per-token prices (and LiteLLM's sample_spec) are skipped."""
    try:
        document = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as error:
        raise PriceMapError(f"not JSON: {error}") from error
    if not isinstance(document, dict):
        raise PriceMapError("expected a JSON object mapping model names to their prices")
    quotes: dict[str, PriceQuote] = {}
    for model_name, entry in document.items():
        if model_name == "sample_spec" or not isinstance(entry, dict):
            continue
        if len(model_name) > 100:
            continue  # Longer than ai_model_pricing.model_name can hold.
        quote = _quote(model_name, entry)
        if quote is not None:
            quotes[model_name] = quote
    return quotes
