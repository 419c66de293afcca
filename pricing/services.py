"""Writes of prices. A price change never edits history: it closes one version and opens the next."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.money import PRICE_DECIMAL_PLACES, PRICE_MAX_DIGITS, decimal_places
from pricing.models import (
    PRICE_FIELDS,
    REQUIRED_TOKEN_PRICE_FIELDS,
    TOKEN_PRICE_FIELDS,
    ModelPriceTier,
    ModelPriceVersion,
    ModelPriceVersionTier,
    ModelPricing,
)
from pricing.providers import provider_canonical
from pricing.selectors import price_version_current


@dataclass(frozen=True)
class PriceTierInput:
    """One long-context tier as given: its prices apply to calls with more prompt tokens than
    above_prompt_tokens. Input and output are required; the rest fall back within the tier."""

    above_prompt_tokens: int
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    cached_input_price_per_million: Decimal | None = None
    cache_write_5m_price_per_million: Decimal | None = None
    cache_write_1h_price_per_million: Decimal | None = None
    input_audio_price_per_million: Decimal | None = None
    reasoning_price_per_million: Decimal | None = None
    output_audio_price_per_million: Decimal | None = None
    output_image_price_per_million: Decimal | None = None

    def key(self) -> tuple:
        return (self.above_prompt_tokens, *(getattr(self, name) for name in TOKEN_PRICE_FIELDS))


# --- Validation: the rules every price obeys, whoever gives it (admin forms call these too) ---------

PRICE_MAX_WHOLE_DIGITS = PRICE_MAX_DIGITS - PRICE_DECIMAL_PLACES


def price_validated(*, field: str, value, required: bool) -> Decimal | None:
    """A price as stored: a Decimal >= 0 with at most PRICE_DECIMAL_PLACES places (kept as given,
    never rounded); None when empty and not required. Raises ValidationError({field: message})."""
    if value is None or value == "":
        if required:
            raise ValidationError({field: ["This price is required."]}, code="required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValidationError({field: ["A price is a finite Decimal number."]}, code="invalid")
    if value < 0:
        raise ValidationError({field: ["A price cannot be negative."]}, code="min_value")
    if decimal_places(value) > PRICE_DECIMAL_PLACES:
        message = f"A price has at most {PRICE_DECIMAL_PLACES} decimal places."
        raise ValidationError({field: [message]}, code="max_decimal_places")
    if value.adjusted() >= PRICE_MAX_WHOLE_DIGITS:
        message = f"A price has at most {PRICE_MAX_WHOLE_DIGITS} digits before the decimal point."
        raise ValidationError({field: [message]}, code="max_whole_digits")
    return value


def prices_validated(*, prices: dict) -> dict[str, Decimal | None]:
    """Every price of PRICE_FIELDS (missing ones empty), validated; input and output required."""
    return {
        name: price_validated(field=name, value=prices.get(name), required=name in REQUIRED_TOKEN_PRICE_FIELDS)
        for name in PRICE_FIELDS
    }


def price_tier_validated(*, tier: PriceTierInput, field_prefix: str = "") -> PriceTierInput:
    """One tier's rules: a threshold of at least 1 prompt token, its prices as price_validated says."""
    above = tier.above_prompt_tokens
    if isinstance(above, bool) or not isinstance(above, int) or above < 1:
        message = "A tier's threshold is a whole number of prompt tokens, at least 1."
        raise ValidationError({f"{field_prefix}above_prompt_tokens": [message]}, code="min_value")
    checked = {
        name: price_validated(
            field=f"{field_prefix}{name}", value=getattr(tier, name), required=name in REQUIRED_TOKEN_PRICE_FIELDS
        )
        for name in TOKEN_PRICE_FIELDS
    }
    return PriceTierInput(above_prompt_tokens=above, **checked)


def price_tiers_validated(*, tiers: Sequence[PriceTierInput]) -> list[PriceTierInput]:
    """Every tier valid and no two with the same threshold; lowest threshold first."""
    checked = [price_tier_validated(tier=tier, field_prefix=f"tiers[{n}].") for n, tier in enumerate(tiers)]
    seen: set[int] = set()
    for n, tier in enumerate(checked):
        if tier.above_prompt_tokens in seen:
            message = f"Two tiers start above {tier.above_prompt_tokens} prompt tokens; each threshold is given once."
            raise ValidationError({f"tiers[{n}].above_prompt_tokens": [message]}, code="unique")
        seen.add(tier.above_prompt_tokens)
    return sorted(checked, key=lambda tier: tier.above_prompt_tokens)


def price_tiers_of(*, pricing: ModelPricing) -> list[PriceTierInput]:
    """The model's current tiers as inputs (what an edit changes)."""
    return [_tier_input(tier) for tier in pricing.tiers.order_by("above_prompt_tokens")]


def _tier_input(tier) -> PriceTierInput:
    return PriceTierInput(
        above_prompt_tokens=tier.above_prompt_tokens, **{name: getattr(tier, name) for name in TOKEN_PRICE_FIELDS}
    )


# --- Writes ------------------------------------------------------------------------------------------


@transaction.atomic
def model_pricing_create(
    *,
    model_name: str,
    provider: str,
    display_name: str,
    model_type: str,
    currency: str,
    input_price_per_million: Decimal,
    output_price_per_million: Decimal,
    cached_input_price_per_million: Decimal | None = None,
    cache_write_5m_price_per_million: Decimal | None = None,
    cache_write_1h_price_per_million: Decimal | None = None,
    input_audio_price_per_million: Decimal | None = None,
    reasoning_price_per_million: Decimal | None = None,
    output_audio_price_per_million: Decimal | None = None,
    output_image_price_per_million: Decimal | None = None,
    price_per_call: Decimal | None = None,
    tiers: Sequence[PriceTierInput] = (),
    monthly_budget: Decimal | None = None,
    enabled: bool = True,
    is_free: bool = False,
    effective_from: datetime | None = None,
    source: str = "",
) -> ModelPricing:
    prices = prices_validated(prices=_given_prices(locals()))
    tiers = price_tiers_validated(tiers=tiers)
    pricing = ModelPricing.objects.create(
        model_name=model_name,
        provider=_provider_name(provider),
        display_name=display_name,
        model_type=model_type,
        currency=currency,
        **prices,
        monthly_budget=monthly_budget,
        enabled=enabled,
        is_free=is_free,
    )
    _current_tiers_replace(pricing=pricing, tiers=tiers)
    _version_create(
        pricing=pricing, prices=prices, tiers=tiers, effective_from=effective_from or timezone.now(), source=source
    )
    return pricing


def _given_prices(arguments: dict) -> dict:
    return {name: arguments[name] for name in PRICE_FIELDS}


def _provider_name(spelled: str) -> str:
    known = list(ModelPricing.objects.values_list("provider", flat=True).distinct())
    return provider_canonical(spelled, known=known)


def _current_tiers_replace(*, pricing: ModelPricing, tiers: list[PriceTierInput]) -> None:
    ModelPriceTier.objects.filter(pricing=pricing).delete()
    ModelPriceTier.objects.bulk_create([ModelPriceTier(pricing=pricing, **_tier_fields(tier)) for tier in tiers])


def _tier_fields(tier: PriceTierInput) -> dict:
    return {
        "above_prompt_tokens": tier.above_prompt_tokens,
        **{name: getattr(tier, name) for name in TOKEN_PRICE_FIELDS},
    }


def _version_create(
    *, pricing: ModelPricing, prices: dict, tiers: list[PriceTierInput], effective_from: datetime, source: str
) -> ModelPriceVersion:
    version = ModelPriceVersion.objects.create(
        pricing=pricing, **prices, currency=pricing.currency, effective_from=effective_from, source=source
    )
    ModelPriceVersionTier.objects.bulk_create(
        [ModelPriceVersionTier(version=version, **_tier_fields(tier)) for tier in tiers]
    )
    return version


def _version_equal(version: ModelPriceVersion, prices: dict, tiers: list[PriceTierInput], currency: str) -> bool:
    return (
        all(getattr(version, name) == prices[name] for name in PRICE_FIELDS)
        and version.currency == currency
        and [tier.key() for tier in tiers] == [_tier_input(tier).key() for tier in version.price_tiers()]
    )


@transaction.atomic
def model_pricing_set_prices(
    *,
    pricing: ModelPricing,
    input_price_per_million: Decimal,
    output_price_per_million: Decimal,
    cached_input_price_per_million: Decimal | None = None,
    cache_write_5m_price_per_million: Decimal | None = None,
    cache_write_1h_price_per_million: Decimal | None = None,
    input_audio_price_per_million: Decimal | None = None,
    reasoning_price_per_million: Decimal | None = None,
    output_audio_price_per_million: Decimal | None = None,
    output_image_price_per_million: Decimal | None = None,
    price_per_call: Decimal | None = None,
    tiers: Sequence[PriceTierInput] = (),
    currency: str | None = None,
    effective_from: datetime | None = None,
    source: str = "",
) -> ModelPriceVersion:
    """Put new prices in force from `effective_from` (default now): the prices and tiers given are the
    whole price (an empty one falls back, see usage.costing). Unchanged prices add no version."""
    prices = prices_validated(prices=_given_prices(locals()))
    tiers = price_tiers_validated(tiers=tiers)
    locked = ModelPricing.objects.select_for_update().get(pk=pricing.pk)
    for name, value in prices.items():
        setattr(locked, name, value)
    locked.currency = currency or locked.currency
    current = price_version_current(pricing=locked)
    if current is not None and _version_equal(current, prices, tiers, locked.currency):
        return current

    starts_at = effective_from or timezone.now()
    if current is not None:
        if starts_at <= current.effective_from:
            raise ValueError("A new price must start after the price currently in force.")
        current.effective_to = starts_at
        current.save(update_fields=["effective_to"])
    locked.save(update_fields=[*PRICE_FIELDS, "currency", "updated_at"])
    _current_tiers_replace(pricing=locked, tiers=tiers)
    return _version_create(pricing=locked, prices=prices, tiers=tiers, effective_from=starts_at, source=source)


VERSIONED_FIELDS = (*PRICE_FIELDS, "currency")


@transaction.atomic
def model_pricing_update(
    *, pricing: ModelPricing, data: dict, tiers: Sequence[PriceTierInput] | None = None
) -> ModelPricing:
    """Apply edited fields. Prices, currency and tiers (None: as they are) go through a new price
    version when they change; the rest are saved as is."""
    locked = ModelPricing.objects.select_for_update().get(pk=pricing.pk)
    if "provider" in data:
        data = {**data, "provider": _provider_name(data["provider"])}
    plain_fields = [name for name in data if name not in VERSIONED_FIELDS]
    for name in plain_fields:
        setattr(locked, name, data[name])
    if plain_fields:
        locked.save(update_fields=[*plain_fields, "updated_at"])
    if tiers is not None or any(name in data for name in VERSIONED_FIELDS):
        model_pricing_set_prices(
            pricing=locked,
            **{name: data.get(name, getattr(locked, name)) for name in PRICE_FIELDS},
            tiers=price_tiers_of(pricing=locked) if tiers is None else tiers,
            currency=data.get("currency", locked.currency),
            source="edited in admin",
        )
    locked.refresh_from_db()
    return locked


@transaction.atomic
def model_pricing_set_enabled(*, model_names: list[str], enabled: bool) -> int:
    return ModelPricing.objects.filter(model_name__in=model_names).update(enabled=enabled, updated_at=timezone.now())


@transaction.atomic
def price_changes_apply(*, changes: list, effective_from: datetime, source: str) -> int:
    """Apply imported prices as new price versions (known models) or new models; history is never edited."""
    for change in changes:
        quote = change.quote
        if change.pricing is None:
            model_pricing_create(
                model_name=quote.model_name,
                provider=quote.provider,
                display_name=quote.model_name,
                model_type=quote.model_type,
                currency=quote.currency,
                input_price_per_million=quote.input_price_per_million,
                output_price_per_million=quote.output_price_per_million,
                cached_input_price_per_million=quote.cached_input_price_per_million,
                effective_from=effective_from,
                source=source,
            )
            continue
        model_pricing_set_prices(
            pricing=change.pricing,
            input_price_per_million=quote.input_price_per_million,
            output_price_per_million=quote.output_price_per_million,
            cached_input_price_per_million=quote.cached_input_price_per_million,
            currency=quote.currency,
            effective_from=effective_from,
            source=source,
        )
    return len(changes)


@transaction.atomic
def model_pricing_budgets_set(*, budgets: dict[str, Decimal | None]) -> int:
    """Set the monthly budget of each named model (None: no budget); returns how many were found."""
    now = timezone.now()
    return sum(
        ModelPricing.objects.filter(model_name=name).update(monthly_budget=budget, updated_at=now)
        for name, budget in sorted(budgets.items())
    )
