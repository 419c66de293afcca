"""Reading a price map in LiteLLM's JSON format (model_prices_and_context_window.json).

Each entry gives USD costs per single token. Numbers are parsed as Decimal straight from the JSON
text and multiplied by 10^6 exactly, so 2.5e-06 becomes 2.5 per million and float noise such as
2.0000000000000002e-07 is kept as published (0.20000000000000002), never rounded.

Kept, per model (the token kinds of aicost, see README "Money"):
- the per-token prices of HELD_PRICES, and `input_cost_per_request` as the fixed fee per call;
- long-context tiers from `<held price>_above_<N>k_tokens` (above N x 1000 prompt tokens) and from
  `tiered_pricing` tables (Alibaba's, Volcengine's: one tier per prompt-size range).
  As LiteLLM bills them, a tier price a model does not publish is the next lower tier's (or the
  base price); a price absent everywhere stays empty and falls back within the tier.
Everything else that is a price (batch, priority, flex and other service-tier variants; prices per
image, second, character, query, page; input image tokens; 12-hour cache writes; off-peak tables) is
not held: the parse reports each such field with the number of models that publish it.
"""

import json
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact, Rounded

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.money import PRICE_DECIMAL_PLACES, PRICE_MAX_DIGITS
from pricing.models import ModelType
from pricing.providers import provider_canonical
from pricing.services import PriceTierInput

LITELLM_CURRENCY = "USD"
# A stored price per million: PRICE_DIGITS digits, PRICE_PLACES of them decimals.
PRICE_DIGITS = PRICE_MAX_DIGITS
PRICE_PLACES = PRICE_DECIMAL_PLACES
_MAX_MODEL_NAME = 100  # ai_model_pricing.model_name
# Arithmetic that raises rather than rounds (the default context keeps 28 significant digits).
_EXACT = Context(prec=100, traps=[Inexact, Rounded])

# LiteLLM's per-token price -> the aicost price per million tokens it becomes.
HELD_PRICES: dict[str, str] = {
    "input_cost_per_token": "input_price_per_million",
    "cache_read_input_token_cost": "cached_input_price_per_million",
    "cache_creation_input_token_cost": "cache_write_5m_price_per_million",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h_price_per_million",
    "input_cost_per_audio_token": "input_audio_price_per_million",
    "output_cost_per_token": "output_price_per_million",
    "output_cost_per_reasoning_token": "reasoning_price_per_million",
    "output_cost_per_audio_token": "output_audio_price_per_million",
    "output_cost_per_image_token": "output_image_price_per_million",
}
PRICE_FIELDS: tuple[str, ...] = tuple(HELD_PRICES.values())
PER_CALL_KEY = "input_cost_per_request"  # USD per request -> price_per_call
CACHE_HIT_KEY = "input_cost_per_token_cache_hit"  # DeepSeek's name for the cache-read price.
# `<held price>_above_200k_tokens` (LiteLLM also reads `_above_200_tokens`: 200 tokens).
_TIER_KEY = re.compile(r"^(?P<base>.+)_above_(?P<number>\d+)(?P<k>k?)_tokens$")
# The prices a `tiered_pricing` tier replaces; LiteLLM reads the others from the model itself.
_TABLE_TIER_KEYS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
)
_MODE_TO_TYPE = {
    "chat": ModelType.CHAT,
    "completion": ModelType.CHAT,
    "responses": ModelType.CHAT,
    "embedding": ModelType.EMBEDDING,
    "image_generation": ModelType.IMAGE,
}


class PriceMapError(ValueError):
    """The file is not a LiteLLM price map, or a price aicost cannot hold exactly (the message says where)."""


# A tier as the price map gives it: what pricing.services takes.
PriceTier = PriceTierInput


@dataclass(frozen=True)
class PriceQuote:
    model_name: str
    provider: str
    model_type: str
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    cached_input_price_per_million: Decimal | None = None
    cache_write_5m_price_per_million: Decimal | None = None
    cache_write_1h_price_per_million: Decimal | None = None
    input_audio_price_per_million: Decimal | None = None
    reasoning_price_per_million: Decimal | None = None
    output_audio_price_per_million: Decimal | None = None
    output_image_price_per_million: Decimal | None = None
    price_per_call: Decimal | None = None
    tiers: tuple[PriceTier, ...] = ()  # Ascending by above_prompt_tokens.
    currency: str = LITELLM_CURRENCY

    def prices(self) -> dict[str, Decimal | None]:
        """Every price field of the quote by name (the tiers apart)."""
        return {name: getattr(self, name) for name in (*PRICE_FIELDS, "price_per_call")}


@dataclass(frozen=True)
class PriceMapReport:
    """What the map publishes that aicost does not hold."""

    dropped_fields: dict[str, int] = field(default_factory=dict)  # field -> models that publish it
    skipped_models: dict[str, int] = field(default_factory=dict)  # reason -> models left out whole

    def lines(self) -> list[str]:
        lines = [
            _("- %(field)s: %(count)s model(s)") % {"field": name, "count": count}
            for name, count in sorted(self.dropped_fields.items())
        ]
        lines += [
            _("- model skipped, %(reason)s: %(count)s") % {"reason": _(reason), "count": count}
            for reason, count in sorted(self.skipped_models.items())
        ]
        return lines


def _is_price_key(key: str) -> bool:
    return "cost" in key or "pricing" in key


def _exact(value, where: str, *, scale: int) -> Decimal:
    """`value` x 10^scale, exactly, checked to fit a stored price."""
    if isinstance(value, bool) or not isinstance(value, Decimal) or not value.is_finite():
        raise PriceMapError(f"{where}: not a number ({value!r})")
    if value < 0:
        raise PriceMapError(f"{where}: negative price ({value})")
    try:
        scaled = value.scaleb(scale, context=_EXACT)
        exponent = scaled.normalize(context=_EXACT).as_tuple().exponent
    except (Inexact, Rounded) as error:  # More digits than any price holds: never rounded.
        raise PriceMapError(f"{where}: {value} has more digits than a price holds") from error
    if -exponent > PRICE_PLACES:
        raise PriceMapError(f"{where}: {value} has more than {PRICE_PLACES} decimal places per million tokens")
    if scaled and scaled.adjusted() >= PRICE_DIGITS - PRICE_PLACES:
        raise PriceMapError(f"{where}: {value} is too large for a price")
    # Plain notation with the places published: 2.5e-06 -> 2.5, 1e-05 -> 10, 0.0 -> 0.
    return scaled.quantize(Decimal(1), context=_EXACT) if exponent >= 0 else scaled.normalize(context=_EXACT)


def _per_million(value, where: str) -> Decimal:
    return _exact(value, where, scale=6)


@dataclass
class _Entry:
    """One model's fields while it is read: which ones were used, to report the rest."""

    name: str
    data: dict
    used: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)  # Parts of a held field that are not held.

    def price(self, key: str) -> Decimal | None:
        value = self.data.get(key)
        if value is None:
            return None
        self.used.add(key)
        return _per_million(value, f"{self.name}.{key}")


def _flat_prices(entry: _Entry) -> dict[str, Decimal | None]:
    prices = {target: entry.price(key) for key, target in HELD_PRICES.items()}
    cache_hit = entry.data.get(CACHE_HIT_KEY)
    if cache_hit is not None:
        hit = _per_million(cache_hit, f"{entry.name}.{CACHE_HIT_KEY}")
        if prices["cached_input_price_per_million"] in (None, hit):
            prices["cached_input_price_per_million"] = hit
            entry.used.add(CACHE_HIT_KEY)
    return prices


def _threshold_tiers(entry: _Entry, base: dict[str, Decimal | None]) -> list[PriceTier]:
    """Tiers from `<held price>_above_<N>k_tokens`, each price cascading from the lower tier as LiteLLM does."""
    by_threshold: dict[int, dict[str, Decimal]] = {}
    for key in entry.data:
        match = _TIER_KEY.match(key)
        if match is None or match["base"] not in HELD_PRICES or entry.data[key] is None:
            continue
        threshold = int(match["number"]) * (1000 if match["k"] else 1)
        if threshold == 0:
            continue  # "Above 0 tokens" is every call: not a tier (reported as not held).
        by_threshold.setdefault(threshold, {})[HELD_PRICES[match["base"]]] = entry.price(key)
    tiers = []
    below = base
    for threshold in sorted(by_threshold):
        prices = {**below, **by_threshold[threshold]}
        tiers.append(PriceTier(above_prompt_tokens=threshold, **prices))
        below = prices
    return tiers


def _range_bounds(tier) -> tuple[Decimal, Decimal] | None:
    bounds = tier.get("range") if isinstance(tier, dict) else None
    if not isinstance(bounds, list) or len(bounds) != 2 or not all(isinstance(b, Decimal) for b in bounds):
        return None
    return bounds[0], bounds[1]


def _table_tiers(entry: _Entry) -> tuple[dict[str, Decimal | None], list[PriceTier]] | None:
    """Base prices and tiers from a `tiered_pricing` table: ranges (start, end] from 0, contiguous,
    each with an input price (LiteLLM ignores a tier without one). None if the table is not such."""
    table = entry.data["tiered_pricing"]
    if not isinstance(table, list):
        return None
    ranged = [(bounds, tier) for tier in table if (bounds := _range_bounds(tier)) is not None]
    ranged.sort(key=lambda item: item[0][0])
    starts_ok = bool(ranged) and len(ranged) == len(table) and ranged[0][0][0] == 0
    contiguous = all(ranged[i][0][1] == ranged[i + 1][0][0] for i in range(len(ranged) - 1))
    contiguous = contiguous and all(start < end for (start, end), _ in ranged)
    priced = all(tier.get("input_cost_per_token") is not None for _, tier in ranged)
    if not (starts_ok and contiguous and priced):
        return None
    entry.used.add("tiered_pricing")
    flat = _flat_prices(entry)
    model_output = flat["output_price_per_million"]
    levels = []
    for index, ((start, _end), tier) in enumerate(ranged):
        prices = {**flat}
        for key in _TABLE_TIER_KEYS:
            value = tier.get(key)
            where = f"{entry.name}.tiered_pricing[{index}].{key}"
            prices[HELD_PRICES[key]] = None if value is None else _per_million(value, where)
        if prices["output_price_per_million"] is None:
            prices["output_price_per_million"] = model_output
        entry.dropped.update(f"tiered_pricing[].{key}" for key in tier if key not in (*_TABLE_TIER_KEYS, "range"))
        if start != start.to_integral_value():
            return None
        levels.append((int(start), prices))
    base = levels[0][1]
    if base["output_price_per_million"] is None:
        return None
    tiers = [PriceTier(above_prompt_tokens=start, **prices) for start, prices in levels[1:]]
    if any(tier.output_price_per_million is None for tier in tiers):
        return None
    return base, tiers


def _quote(entry: _Entry) -> PriceQuote | str:
    """The entry's quote, or why it has none."""
    if len(entry.name) > _MAX_MODEL_NAME:
        return f"name longer than {_MAX_MODEL_NAME} characters"
    tiers: list[PriceTier] = []
    table = None
    if "tiered_pricing" in entry.data:
        table = _table_tiers(entry)
    if table is not None:
        base, tiers = table
    else:
        entry.used.discard("tiered_pricing")
        entry.dropped.clear()
        base = _flat_prices(entry)
        mode = entry.data.get("mode")
        if base["output_price_per_million"] is None:
            if mode == "embedding":
                base["output_price_per_million"] = Decimal(0)  # An embedding has no output tokens.
            elif mode == "image_generation" and base["output_image_price_per_million"] is not None:
                # As LiteLLM bills it: every output token is an image token.
                base["output_price_per_million"] = base["output_image_price_per_million"]
        if base["input_price_per_million"] is None or base["output_price_per_million"] is None:
            return gettext_noop("no per-token input and output price")
        tiers = _threshold_tiers(entry, base)
    per_call = entry.data.get(PER_CALL_KEY)
    if per_call is not None:
        entry.used.add(PER_CALL_KEY)
        per_call = _exact(per_call, f"{entry.name}.{PER_CALL_KEY}", scale=0)
    return PriceQuote(
        model_name=entry.name,
        provider=provider_canonical(str(entry.data.get("litellm_provider") or "unknown"))[:50],
        model_type=_MODE_TO_TYPE.get(entry.data.get("mode"), ModelType.CHAT),
        price_per_call=per_call,
        tiers=tuple(tiers),
        **base,
    )


def litellm_price_map_parse(
    *, text: str, model_names: Collection[str] | None = None
) -> tuple[dict[str, PriceQuote], PriceMapReport]:
    """Token prices by model name, and the report of what is not held, of every model in the map or of
    `model_names` only. LiteLLM's sample_spec is skipped."""
    try:
        document = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as error:
        raise PriceMapError(f"not JSON: {error}") from error
    if not isinstance(document, dict):
        raise PriceMapError("expected a JSON object mapping model names to their prices")
    quotes: dict[str, PriceQuote] = {}
    dropped: Counter = Counter()
    skipped: Counter = Counter()
    for model_name, data in document.items():
        if model_name == "sample_spec" or not isinstance(data, dict):
            continue
        if model_names is not None and model_name not in model_names:
            continue
        entry = _Entry(name=model_name, data=data)
        quote = _quote(entry)
        if isinstance(quote, str):
            skipped[quote] += 1
            entry.used.clear()
            entry.dropped.clear()
        else:
            quotes[model_name] = quote
        dropped.update(entry.dropped)
        for key in data:
            if _is_price_key(key) and key not in entry.used and data[key] is not None:
                dropped[key] += 1
    return quotes, PriceMapReport(dropped_fields=dict(dropped), skipped_models=dict(skipped))
