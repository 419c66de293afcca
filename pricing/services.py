"""Writes of prices. A price change never edits history: it closes one version and opens the next.
So does a change of is_free or enabled: both are part of the price history, read at each call's moment.

No version starts in the past unless the caller passes allow_past=True (only usage's repricing, which
checks the stored calls in the span first): a back-dated start would leave stored calls pointing at a
version whose span no longer contains them."""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.money import PRICE_DECIMAL_PLACES, PRICE_MAX_DIGITS, decimal_places
from pricing.models import (
    PRICE_FIELDS,
    REQUIRED_TOKEN_PRICE_FIELDS,
    TOKEN_PRICE_FIELDS,
    ModelNamePattern,
    ModelPriceTier,
    ModelPriceVersion,
    ModelPriceVersionTier,
    ModelPricing,
    PatternKind,
)
from pricing.providers import provider_canonical
from pricing.selectors import price_version_current

PATTERN_MAX_LENGTH = ModelNamePattern._meta.get_field("pattern").max_length


def _start_checked(effective_from: datetime | None, *, allow_past: bool) -> datetime:
    """When a new version starts: effective_from, or now. Earlier than now only with allow_past."""
    now = timezone.now()
    if effective_from is None:
        return now
    if timezone.is_naive(effective_from):
        raise ValidationError({"effective_from": _("effective_from needs a UTC offset.")})
    if effective_from < now and not allow_past:
        raise ValidationError(
            {
                "effective_from": _(
                    "A price version cannot start in the past (%(start)s is before now): "
                    "calls already stored in that span would point at a version that did not price them. "
                    "Leave it empty to start now, or reprice the stored calls with usage_reprice."
                )
                % {"start": effective_from.isoformat()}
            }
        )
    return effective_from


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
            raise ValidationError({field: [_("This price is required.")]}, code="required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValidationError({field: [_("A price is a finite Decimal number.")]}, code="invalid")
    if value < 0:
        raise ValidationError({field: [_("A price cannot be negative.")]}, code="min_value")
    if decimal_places(value) > PRICE_DECIMAL_PLACES:
        message = _("A price has at most %(places)s decimal places.") % {"places": PRICE_DECIMAL_PLACES}
        raise ValidationError({field: [message]}, code="max_decimal_places")
    if value.adjusted() >= PRICE_MAX_WHOLE_DIGITS:
        message = _("A price has at most %(digits)s digits before the decimal point.") % {
            "digits": PRICE_MAX_WHOLE_DIGITS
        }
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
        message = _("A tier's threshold is a whole number of prompt tokens, at least 1.")
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
            message = _("Two tiers start above %(tokens)s prompt tokens; each threshold is given once.") % {
                "tokens": tier.above_prompt_tokens
            }
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
    budget_currency: str = "",
    enabled: bool = True,
    is_free: bool = False,
    effective_from: datetime | None = None,
    source: str = "",
    name_patterns: Sequence[tuple[str, str]] = (),
    allow_past: bool = False,
) -> ModelPricing:
    """A new priced model, its first price version (from effective_from, default now) and the other
    names its calls may arrive under (name_patterns: (kind, pattern) pairs, see model_name_patterns_set)."""
    prices = prices_validated(prices=_given_prices(locals()))
    tiers = price_tiers_validated(tiers=tiers)
    starts_at = _start_checked(effective_from, allow_past=allow_past)
    model_name_check(model_name=model_name, pricing=None)
    pricing = ModelPricing.objects.create(
        model_name=model_name,
        provider=_provider_name(provider),
        display_name=display_name,
        model_type=model_type,
        currency=currency,
        **prices,
        monthly_budget=monthly_budget,
        budget_currency=budget_currency,  # Empty: the model's currency.
        enabled=enabled,
        is_free=is_free,
    )
    _current_tiers_replace(pricing=pricing, tiers=tiers)
    _version_create(pricing=pricing, prices=prices, tiers=tiers, effective_from=starts_at, source=source)
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
        message = _("%(name)s is already an alias of %(model)s.") % {
            "name": repr(model_name),
            "model": repr(owner.pricing.model_name),
        }
        raise ValidationError({"model_name": message})


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
        pricing=pricing,
        **prices,
        currency=pricing.currency,
        enabled=pricing.enabled,
        is_free=pricing.is_free,
        effective_from=effective_from,
        source=source,
    )
    ModelPriceVersionTier.objects.bulk_create(
        [ModelPriceVersionTier(version=version, **_tier_fields(tier)) for tier in tiers]
    )
    return version


def _version_equal(
    version: ModelPriceVersion, prices: dict, tiers: list[PriceTierInput], pricing: ModelPricing
) -> bool:
    return (
        all(getattr(version, name) == prices[name] for name in PRICE_FIELDS)
        and version.currency == pricing.currency
        and version.enabled == pricing.enabled
        and version.is_free == pricing.is_free
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
    enabled: bool | None = None,
    is_free: bool | None = None,
    effective_from: datetime | None = None,
    source: str = "",
    allow_past: bool = False,
) -> ModelPriceVersion:
    """Put new prices (and is_free/enabled, None: as they are) in force from `effective_from`
    (default now; never in the past unless allow_past): the prices and tiers given are the whole price
    (an empty one falls back, see usage.costing). Unchanged values add no version."""
    prices = prices_validated(prices=_given_prices(locals()))
    tiers = price_tiers_validated(tiers=tiers)
    starts_at = _start_checked(effective_from, allow_past=allow_past)
    locked = ModelPricing.objects.select_for_update().get(pk=pricing.pk)
    for name, value in prices.items():
        setattr(locked, name, value)
    locked.currency = currency or locked.currency
    locked.enabled = locked.enabled if enabled is None else enabled
    locked.is_free = locked.is_free if is_free is None else is_free
    current = price_version_current(pricing=locked)
    if current is not None and _version_equal(current, prices, tiers, locked):
        return current

    if current is not None:
        if starts_at <= current.effective_from:
            raise ValidationError({"effective_from": _("A new price must start after the price currently in force.")})
        current.effective_to = starts_at
        current.save(update_fields=["effective_to"])
    locked.save(update_fields=[*VERSIONED_FIELDS, "updated_at"])
    _current_tiers_replace(pricing=locked, tiers=tiers)
    return _version_create(pricing=locked, prices=prices, tiers=tiers, effective_from=starts_at, source=source)


@dataclass(frozen=True)
class Backdated:
    """What price_version_backdate changed: the version now in force from the new start, the versions
    it replaced whole (removed; their ids), and the one cut short at the new start (if any)."""

    version: ModelPriceVersion
    removed_ids: tuple[int, ...]
    shortened_id: int | None
    previous_start: datetime


@transaction.atomic
def price_version_backdate(*, pricing: ModelPricing, effective_from: datetime, allow_past: bool = False) -> Backdated:
    """Put the model's current price version in force from `effective_from` (in the past: "the price
    was wrong since then"): the versions wholly inside [effective_from, its old start) are removed,
    one that straddles effective_from ends there. Only with allow_past (usage's repricing, which moves
    every stored call of the span onto the versions in force at its moment in the same transaction;
    a version still referenced by a stored call cannot be removed)."""
    starts_at = _start_checked(effective_from, allow_past=allow_past)
    locked = ModelPricing.objects.select_for_update().get(pk=pricing.pk)
    current = price_version_current(pricing=locked)
    if current is None:
        raise ValidationError({"model": f"{locked.model_name!r} has no price in force to back-date."})
    previous_start = current.effective_from
    if starts_at >= previous_start:
        raise ValidationError(
            {"effective_from": f"The price in force already starts at {previous_start.isoformat()}, not later."}
        )
    earlier = locked.price_versions.filter(effective_from__lt=previous_start).exclude(pk=current.pk)
    covered = list(earlier.filter(effective_from__gte=starts_at).values_list("pk", flat=True))
    ModelPriceVersionTier.objects.filter(version_id__in=covered).delete()
    ModelPriceVersion.objects.filter(pk__in=covered).delete()
    straddling = earlier.filter(effective_from__lt=starts_at).filter(
        models.Q(effective_to__isnull=True) | models.Q(effective_to__gt=starts_at)
    )
    shortened = straddling.first()
    if shortened is not None:
        shortened.effective_to = starts_at
        shortened.save(update_fields=["effective_to"])
    current.effective_from = starts_at
    current.save(update_fields=["effective_from"])
    return Backdated(
        version=current,
        removed_ids=tuple(sorted(covered)),
        shortened_id=None if shortened is None else shortened.pk,
        previous_start=previous_start,
    )


# What a version holds: a change of any of them closes the version in force and opens the next.
VERSIONED_FIELDS = (*PRICE_FIELDS, "currency", "enabled", "is_free")


@transaction.atomic
def model_pricing_update(
    *,
    pricing: ModelPricing,
    data: dict,
    tiers: Sequence[PriceTierInput] | None = None,
    source: str = "edited in admin",
) -> ModelPricing:
    """Apply edited fields. Prices, currency, is_free, enabled and tiers (None: as they are) go
    through a new price version (from now) when they change; the rest are saved as is."""
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
    if tiers is not None or any(name in data for name in VERSIONED_FIELDS):
        model_pricing_set_prices(
            pricing=locked,
            **{name: data.get(name, getattr(locked, name)) for name in PRICE_FIELDS},
            tiers=price_tiers_of(pricing=locked) if tiers is None else tiers,
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
            errors.append(_("Unknown pattern kind %(kind)s.") % {"kind": repr(kind)})
            continue
        if not pattern:
            errors.append("A pattern cannot be blank.")
            continue
        if len(pattern) > PATTERN_MAX_LENGTH:
            errors.append(_("A pattern has at most %(length)s characters.") % {"length": PATTERN_MAX_LENGTH})
            continue
        if (kind, pattern) in cleaned:
            errors.append(
                _("%(kind)s %(pattern)s is listed twice.") % {"kind": PatternKind(kind).label, "pattern": repr(pattern)}
            )
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
                errors.append(_("Alias %(pattern)s is the model's own name.") % {"pattern": repr(pattern)})
            elif other_models.filter(model_name=pattern).exists():
                errors.append(
                    _("Alias %(pattern)s is the model name of another priced model.") % {"pattern": repr(pattern)}
                )
            elif (taken := others.filter(kind=kind, pattern=pattern).first()) is not None:
                errors.append(
                    _("Alias %(pattern)s is already an alias of %(model)s.")
                    % {"pattern": repr(pattern), "model": repr(taken.pricing.model_name)}
                )
        elif kind == PatternKind.PREFIX:
            if (taken := others.filter(kind=kind, pattern=pattern).first()) is not None:
                errors.append(
                    _("Prefix %(pattern)s is already held by %(model)s.")
                    % {"pattern": repr(pattern), "model": repr(taken.pricing.model_name)}
                )
        else:
            try:
                re.compile(pattern)
            except re.error as error:
                errors.append(
                    _("Regular expression %(pattern)s does not compile: %(error)s.")
                    % {"pattern": repr(pattern), "error": error}
                )
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
                **quote.prices(),
                tiers=quote.tiers,
                effective_from=starts_at,
                source=source,
                allow_past=True,
            )
            continue
        model_pricing_set_prices(
            pricing=change.pricing,
            **quote.prices(),
            tiers=quote.tiers,
            currency=quote.currency,
            effective_from=starts_at,
            source=source,
            allow_past=True,
        )
    return len(changes)


@transaction.atomic
def model_pricing_budgets_set(*, budgets: dict[str, Decimal | None], currency: str | None = None) -> int:
    """Set the monthly budget of each named model (None: no budget), stated in `currency` (None: the
    budget currency stays as it is; "": the model's currency); returns how many were found."""
    now = timezone.now()
    fields = {} if currency is None else {"budget_currency": currency}
    return sum(
        ModelPricing.objects.filter(model_name=name).update(monthly_budget=budget, updated_at=now, **fields)
        for name, budget in sorted(budgets.items())
    )
