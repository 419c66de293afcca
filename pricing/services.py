"""Writes of prices. A price change never edits history: it closes one version and opens the next.
So does a change of is_free or enabled: both are part of the price history, read at each call's moment.

No version starts in the past unless the caller passes allow_past=True (only usage's repricing, which
checks the stored calls in the span first): a back-dated start would leave stored calls pointing at a
version whose span no longer contains them."""

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from pricing.models import ModelNamePattern, ModelPriceVersion, ModelPricing, PatternKind
from pricing.providers import provider_canonical
from pricing.selectors import price_version_current

PATTERN_MAX_LENGTH = ModelNamePattern._meta.get_field("pattern").max_length


def _start_checked(effective_from: datetime | None, *, allow_past: bool) -> datetime:
    """When a new version starts: effective_from, or now. Earlier than now only with allow_past."""
    now = timezone.now()
    if effective_from is None:
        return now
    if timezone.is_naive(effective_from):
        raise ValidationError({"effective_from": "effective_from needs a UTC offset."})
    if effective_from < now and not allow_past:
        raise ValidationError(
            {
                "effective_from": (
                    f"A price version cannot start in the past ({effective_from.isoformat()} is before now): "
                    "calls already stored in that span would point at a version that did not price them. "
                    "Leave it empty to start now, or reprice the stored calls with usage_reprice."
                )
            }
        )
    return effective_from


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
    name_patterns: Sequence[tuple[str, str]] = (),
    allow_past: bool = False,
) -> ModelPricing:
    """A new priced model, its first price version (from effective_from, default now) and the other
    names its calls may arrive under (name_patterns: (kind, pattern) pairs, see model_name_patterns_set)."""
    starts_at = _start_checked(effective_from, allow_past=allow_past)
    model_name_check(model_name=model_name, pricing=None)
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
        enabled=enabled,
        is_free=is_free,
        effective_from=starts_at,
        source=source,
    )
    if name_patterns:
        model_name_patterns_set(pricing=pricing, patterns=name_patterns)
    return pricing


def model_name_check(*, model_name: str, pricing: ModelPricing | None) -> None:
    """A model's name may not be another model's alias (ValidationError on model_name)."""
    taken = ModelNamePattern.objects.filter(kind=PatternKind.EXACT, pattern=model_name).select_related("pricing")
    if pricing is not None:
        taken = taken.exclude(pricing=pricing)
    owner = taken.first()
    if owner is not None:
        raise ValidationError({"model_name": f"{model_name!r} is already an alias of {owner.pricing.model_name!r}."})


def _provider_name(spelled: str) -> str:
    known = list(ModelPricing.objects.values_list("provider", flat=True).distinct())
    return provider_canonical(spelled, known=known)


def _prices_equal(version: ModelPriceVersion, pricing: ModelPricing) -> bool:
    return (
        version.input_price_per_million == pricing.input_price_per_million
        and version.output_price_per_million == pricing.output_price_per_million
        and version.cached_input_price_per_million == pricing.cached_input_price_per_million
        and version.currency == pricing.currency
        and version.enabled == pricing.enabled
        and version.is_free == pricing.is_free
    )


@transaction.atomic
def model_pricing_set_prices(
    *,
    pricing: ModelPricing,
    input_price_per_million: Decimal,
    output_price_per_million: Decimal,
    cached_input_price_per_million: Decimal | None,
    currency: str | None = None,
    enabled: bool | None = None,
    is_free: bool | None = None,
    effective_from: datetime | None = None,
    source: str = "",
    allow_past: bool = False,
) -> ModelPriceVersion:
    """Put new prices (and is_free/enabled, None: as they are) in force from `effective_from`
    (default now; never in the past unless allow_past). Unchanged values add no version."""
    starts_at = _start_checked(effective_from, allow_past=allow_past)
    locked = ModelPricing.objects.select_for_update().get(pk=pricing.pk)
    locked.input_price_per_million = input_price_per_million
    locked.output_price_per_million = output_price_per_million
    locked.cached_input_price_per_million = cached_input_price_per_million
    locked.currency = currency or locked.currency
    locked.enabled = locked.enabled if enabled is None else enabled
    locked.is_free = locked.is_free if is_free is None else is_free
    current = price_version_current(pricing=locked)
    if current is not None and _prices_equal(current, locked):
        return current

    if current is not None:
        if starts_at <= current.effective_from:
            raise ValidationError({"effective_from": "A new price must start after the price currently in force."})
        current.effective_to = starts_at
        current.save(update_fields=["effective_to"])
    locked.save(update_fields=[*VERSIONED_FIELDS, "updated_at"])
    return ModelPriceVersion.objects.create(
        pricing=locked,
        input_price_per_million=input_price_per_million,
        output_price_per_million=output_price_per_million,
        cached_input_price_per_million=cached_input_price_per_million,
        currency=locked.currency,
        enabled=locked.enabled,
        is_free=locked.is_free,
        effective_from=starts_at,
        source=source,
    )


PRICE_FIELDS = ("input_price_per_million", "output_price_per_million", "cached_input_price_per_million", "currency")
# What a version holds: a change of any of them closes the version in force and opens the next.
VERSIONED_FIELDS = (*PRICE_FIELDS, "enabled", "is_free")


@transaction.atomic
def model_pricing_update(*, pricing: ModelPricing, data: dict, source: str = "edited in admin") -> ModelPricing:
    """Apply edited fields. Prices, is_free and enabled go through a new price version (from now);
    the rest are saved as is."""
    locked = ModelPricing.objects.select_for_update().get(pk=pricing.pk)
    if "provider" in data:
        data = {**data, "provider": _provider_name(data["provider"])}
    if "model_name" in data:
        model_name_check(model_name=data["model_name"], pricing=locked)
    plain_fields = [name for name in data if name not in VERSIONED_FIELDS]
    for name in plain_fields:
        setattr(locked, name, data[name])
    if plain_fields:
        locked.save(update_fields=[*plain_fields, "updated_at"])
    if any(name in data for name in VERSIONED_FIELDS):
        model_pricing_set_prices(
            pricing=locked,
            input_price_per_million=data.get("input_price_per_million", locked.input_price_per_million),
            output_price_per_million=data.get("output_price_per_million", locked.output_price_per_million),
            cached_input_price_per_million=data.get(
                "cached_input_price_per_million", locked.cached_input_price_per_million
            ),
            currency=data.get("currency", locked.currency),
            enabled=data.get("enabled", locked.enabled),
            is_free=data.get("is_free", locked.is_free),
            source=source,
        )
    locked.refresh_from_db()
    return locked


@transaction.atomic
def model_pricing_set_enabled(*, model_names: list[str], enabled: bool) -> int:
    """Enable or disable models from now: each changed model gets a new price version (its calls are
    priced by the version in force at their moment). Returns how many were found."""
    pricings = list(ModelPricing.objects.filter(model_name__in=model_names).order_by("model_name"))
    for pricing in pricings:
        if pricing.enabled != enabled:
            model_pricing_update(
                pricing=pricing, data={"enabled": enabled}, source="enabled" if enabled else "disabled"
            )
    return len(pricings)


def model_name_patterns_check(
    *, pricing: ModelPricing | None, model_name: str, patterns: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The patterns, trimmed, if they may be saved for this model (pricing None: a model not yet
    created, named model_name); else a ValidationError naming each problem: an alias that is another
    model's model_name or alias, a prefix another model holds, an expression that does not compile."""
    cleaned: list[tuple[str, str]] = []
    errors: list[str] = []
    for kind, raw in patterns:
        pattern = (raw or "").strip()
        if kind not in PatternKind.values:
            errors.append(f"Unknown pattern kind {kind!r}.")
            continue
        if not pattern:
            errors.append("A pattern cannot be blank.")
            continue
        if len(pattern) > PATTERN_MAX_LENGTH:
            errors.append(f"A pattern has at most {PATTERN_MAX_LENGTH} characters.")
            continue
        if (kind, pattern) in cleaned:
            errors.append(f"{PatternKind(kind).label} {pattern!r} is listed twice.")
            continue
        cleaned.append((kind, pattern))
    others = ModelNamePattern.objects.select_related("pricing")
    other_models = ModelPricing.objects.all()
    if pricing is not None:
        others = others.exclude(pricing=pricing)
        other_models = other_models.exclude(pk=pricing.pk)
    for kind, pattern in cleaned:
        if kind == PatternKind.EXACT:
            if pattern == model_name:
                errors.append(f"Alias {pattern!r} is the model's own name.")
            elif other_models.filter(model_name=pattern).exists():
                errors.append(f"Alias {pattern!r} is the model name of another priced model.")
            elif (taken := others.filter(kind=kind, pattern=pattern).first()) is not None:
                errors.append(f"Alias {pattern!r} is already an alias of {taken.pricing.model_name!r}.")
        elif kind == PatternKind.PREFIX:
            if (taken := others.filter(kind=kind, pattern=pattern).first()) is not None:
                errors.append(f"Prefix {pattern!r} is already held by {taken.pricing.model_name!r}.")
        else:
            try:
                re.compile(pattern)
            except re.error as error:
                errors.append(f"Regular expression {pattern!r} does not compile: {error}.")
    if errors:
        raise ValidationError(errors)
    return cleaned


@transaction.atomic
def model_name_patterns_set(*, pricing: ModelPricing, patterns: Iterable[tuple[str, str]]) -> list[ModelNamePattern]:
    """Make these (kind, pattern) pairs the model's patterns (ValidationError: model_name_patterns_check).
    Takes effect for calls recorded from then on; stored calls keep the model they were counted under."""
    locked = ModelPricing.objects.select_for_update().get(pk=pricing.pk)
    cleaned = model_name_patterns_check(pricing=locked, model_name=locked.model_name, patterns=patterns)
    ModelNamePattern.objects.filter(pricing=locked).delete()
    return ModelNamePattern.objects.bulk_create(
        [ModelNamePattern(pricing=locked, kind=kind, pattern=pattern) for kind, pattern in cleaned]
    )


@transaction.atomic
def price_changes_apply(*, changes: list, effective_from: datetime | None, source: str) -> int:
    """Apply imported prices as new price versions (known models) or new models from effective_from
    (None: now; never in the past); history is never edited."""
    # One moment for the whole import, checked once here (the calls below would see it as past).
    starts_at = _start_checked(effective_from, allow_past=False)
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
                effective_from=starts_at,
                source=source,
                allow_past=True,
            )
            continue
        model_pricing_set_prices(
            pricing=change.pricing,
            input_price_per_million=quote.input_price_per_million,
            output_price_per_million=quote.output_price_per_million,
            cached_input_price_per_million=quote.cached_input_price_per_million,
            currency=quote.currency,
            effective_from=starts_at,
            source=source,
            allow_past=True,
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
