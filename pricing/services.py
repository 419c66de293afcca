"""Writes of prices. A price change never edits history: it closes one version and opens the next."""

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from pricing.models import ModelPriceVersion, ModelPricing
from pricing.providers import provider_canonical
from pricing.selectors import price_version_current


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
    monthly_budget: Decimal | None = None,
    enabled: bool = True,
    is_free: bool = False,
    effective_from: datetime | None = None,
    source: str = "",
) -> ModelPricing:
    pricing = ModelPricing.objects.create(
        model_name=model_name,
        provider=_provider_name(provider),
        display_name=display_name,
        model_type=model_type,
        currency=currency,
        input_price_per_million=input_price_per_million,
        output_price_per_million=output_price_per_million,
        cached_input_price_per_million=cached_input_price_per_million,
        monthly_budget=monthly_budget,
        enabled=enabled,
        is_free=is_free,
    )
    ModelPriceVersion.objects.create(
        pricing=pricing,
        input_price_per_million=input_price_per_million,
        output_price_per_million=output_price_per_million,
        cached_input_price_per_million=cached_input_price_per_million,
        currency=currency,
        effective_from=effective_from or timezone.now(),
        source=source,
    )
    return pricing


def _provider_name(spelled: str) -> str:
    known = list(ModelPricing.objects.values_list("provider", flat=True).distinct())
    return provider_canonical(spelled, known=known)


def _prices_equal(version: ModelPriceVersion, pricing: ModelPricing) -> bool:
    return (
        version.input_price_per_million == pricing.input_price_per_million
        and version.output_price_per_million == pricing.output_price_per_million
        and version.cached_input_price_per_million == pricing.cached_input_price_per_million
        and version.currency == pricing.currency
    )


@transaction.atomic
def model_pricing_set_prices(
    *,
    pricing: ModelPricing,
    input_price_per_million: Decimal,
    output_price_per_million: Decimal,
    cached_input_price_per_million: Decimal | None,
    currency: str | None = None,
    effective_from: datetime | None = None,
    source: str = "",
) -> ModelPriceVersion:
    """Put new prices in force from `effective_from` (default now). Unchanged prices add no version."""
    locked = ModelPricing.objects.select_for_update().get(pk=pricing.pk)
    locked.input_price_per_million = input_price_per_million
    locked.output_price_per_million = output_price_per_million
    locked.cached_input_price_per_million = cached_input_price_per_million
    locked.currency = currency or locked.currency
    current = price_version_current(pricing=locked)
    if current is not None and _prices_equal(current, locked):
        return current

    starts_at = effective_from or timezone.now()
    if current is not None:
        if starts_at <= current.effective_from:
            raise ValueError("A new price must start after the price currently in force.")
        current.effective_to = starts_at
        current.save(update_fields=["effective_to"])
    locked.save(
        update_fields=[
            "input_price_per_million",
            "output_price_per_million",
            "cached_input_price_per_million",
            "currency",
            "updated_at",
        ]
    )
    return ModelPriceVersion.objects.create(
        pricing=locked,
        input_price_per_million=input_price_per_million,
        output_price_per_million=output_price_per_million,
        cached_input_price_per_million=cached_input_price_per_million,
        currency=locked.currency,
        effective_from=starts_at,
        source=source,
    )


PRICE_FIELDS = ("input_price_per_million", "output_price_per_million", "cached_input_price_per_million", "currency")


@transaction.atomic
def model_pricing_update(*, pricing: ModelPricing, data: dict) -> ModelPricing:
    """Apply edited fields. Price fields go through a new price version; the rest are saved as is."""
    locked = ModelPricing.objects.select_for_update().get(pk=pricing.pk)
    if "provider" in data:
        data = {**data, "provider": _provider_name(data["provider"])}
    plain_fields = [name for name in data if name not in PRICE_FIELDS]
    for name in plain_fields:
        setattr(locked, name, data[name])
    if plain_fields:
        locked.save(update_fields=[*plain_fields, "updated_at"])
    if any(name in data for name in PRICE_FIELDS):
        model_pricing_set_prices(
            pricing=locked,
            input_price_per_million=data.get("input_price_per_million", locked.input_price_per_million),
            output_price_per_million=data.get("output_price_per_million", locked.output_price_per_million),
            cached_input_price_per_million=data.get(
                "cached_input_price_per_million", locked.cached_input_price_per_million
            ),
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
    """Apply imported prices (every token kind, the fee per call, the tiers) as new price versions of
    known models or as new models; history is never edited."""
    for change in changes:
        quote = change.quote
        if change.pricing is None:
            model_pricing_create(
                model_name=quote.model_name,
                provider=quote.provider,
                display_name=quote.model_name,
                model_type=quote.model_type,
                currency=quote.currency,
                **quote.prices(),
                tiers=quote.tiers,
                effective_from=effective_from,
                source=source,
            )
            continue
        model_pricing_set_prices(
            pricing=change.pricing,
            **quote.prices(),
            tiers=quote.tiers,
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
