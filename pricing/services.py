"""Writes of prices. A price change never edits history: it closes one version and opens the next.
So does a change of is_free or enabled: both are part of the price history, read at each call's moment.

No version starts in the past unless the caller passes allow_past=True (only usage's repricing, which
checks the stored calls in the span first): a back-dated start would leave stored calls pointing at a
version whose span no longer contains them."""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.money import (
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
    RATE_DECIMAL_PLACES,
    RATE_MAX_DIGITS,
    decimal_places,
    rate_stored,
)
from pricing.models import (
    PRICE_FIELDS,
    REQUIRED_TOKEN_PRICE_FIELDS,
    TOKEN_PRICE_FIELDS,
    ExchangeRate,
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


# --- Exchange rates: a history (pricing.models.ExchangeRate) ------------------------------------------
#
# Stored spans never change, except that a pair's open row is closed when a newer rate starts at a
# moment not in the past (so no call already stored at that moment was converted at the closed rate
# for a moment the new one now covers). Rates older than a pair's first row may be added: a history
# fill, each ending where the next begins (the last where the first stored one begins); no stored call
# was converted then, since no rate was in force. A rate equal to a stored one (same pair, start and
# rate) is unchanged; a different rate for a stored start, and a new rate starting in the past (or
# inside the stored history) after the pair's first row, are refused: reported, never applied.

CURRENCY_CODE = re.compile(r"[A-Z]{3}")
RATE_MAX_WHOLE_DIGITS = RATE_MAX_DIGITS - RATE_DECIMAL_PLACES
SOURCE_MAX_LENGTH = ExchangeRate._meta.get_field("source").max_length


@dataclass(frozen=True)
class ExchangeRateQuote:
    """A rate as given: `rate` units of quote_currency per unit of base_currency from effective_from."""

    base_currency: str
    quote_currency: str
    rate: Decimal
    effective_from: datetime
    source: str = ""

    @property
    def pair(self) -> tuple[str, str]:
        return (self.base_currency, self.quote_currency)


class RefusalCode(StrEnum):
    """Why a quote is refused."""

    INVALID = "invalid"  # Not a valid rate (exchange_rate_validated).
    DIFFERENT_RATE = "different_rate"  # Another rate is stored for the pair and start.
    PAST = "past"  # Starts in the past, after the pair's first stored rate.
    INSIDE_HISTORY = "inside_history"  # Starts between stored rates (not in the past: a future stored start).
    DUPLICATE = "duplicate"  # The same pair and start given twice with different rates.


@dataclass(frozen=True)
class RateRefusal:
    """A quote not applied: the field it is about, why (translated), and a code (RefusalCode)."""

    quote: ExchangeRateQuote
    field: str
    code: str
    reason: str


@dataclass(frozen=True)
class RateClosed:
    """A pair's open row, closed at `effective_to` by the newer rate that starts there."""

    rate: ExchangeRate
    effective_to: datetime


@dataclass
class PairImport:
    """What an import does to one pair."""

    base_currency: str
    quote_currency: str
    new: list[ExchangeRate]
    unchanged: int = 0
    closed: RateClosed | None = None
    refused: list[RateRefusal] = field(default_factory=list)


@dataclass
class ExchangeRatesImport:
    """What exchange_rates_import did (apply) or would do (dry run): the rows added (new, saved when
    applied; each with its effective_to), the quotes equal to a stored row (unchanged), the open rows
    closed, the quotes refused with their reasons."""

    applied: bool
    pairs: dict[tuple[str, str], PairImport]
    invalid: list[RateRefusal]

    @property
    def new(self) -> list[ExchangeRate]:
        return [row for pair in self.pairs.values() for row in pair.new]

    @property
    def unchanged(self) -> int:
        return sum(pair.unchanged for pair in self.pairs.values())

    @property
    def closed(self) -> list[RateClosed]:
        return [pair.closed for pair in self.pairs.values() if pair.closed is not None]

    @property
    def refused(self) -> list[RateRefusal]:
        return [*self.invalid, *(refusal for pair in self.pairs.values() for refusal in pair.refused)]


def _currency_checked(field_name: str, value) -> str:
    if not isinstance(value, str) or not CURRENCY_CODE.fullmatch(value):
        message = _("%(value)r is not an ISO 4217 currency code (three capital letters, e.g. USD).") % {"value": value}
        raise ValidationError({field_name: [message]}, code="invalid")
    return value


def exchange_rate_validated(*, quote: ExchangeRateQuote) -> ExchangeRateQuote:
    """A quote as it would be stored (its rate at the stored scale, core.money.rate_stored), or
    ValidationError({field: message}): ISO 4217 codes, two different currencies, a finite rate > 0
    that the stored scale keeps above 0, an aware effective_from."""
    base = _currency_checked("base_currency", quote.base_currency)
    quote_currency = _currency_checked("quote_currency", quote.quote_currency)
    if base == quote_currency:
        message = _("A rate converts between two different currencies (both are %(currency)s).") % {"currency": base}
        raise ValidationError({"quote_currency": [message]}, code="invalid")
    rate = quote.rate
    if isinstance(rate, int) and not isinstance(rate, bool):
        rate = Decimal(rate)
    if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
        raise ValidationError({"rate": [_("A rate is a finite Decimal number above 0.")]}, code="invalid")
    stored = rate_stored(rate)
    if stored <= 0:
        message = _("A rate needs a non-zero digit within %(places)s decimal places.") % {"places": RATE_DECIMAL_PLACES}
        raise ValidationError({"rate": [message]}, code="invalid")
    if stored.adjusted() >= RATE_MAX_WHOLE_DIGITS:
        message = _("A rate has at most %(digits)s digits before the decimal point.") % {
            "digits": RATE_MAX_WHOLE_DIGITS
        }
        raise ValidationError({"rate": [message]}, code="invalid")
    start = quote.effective_from
    if not isinstance(start, datetime) or timezone.is_naive(start):
        raise ValidationError({"effective_from": [_("effective_from needs a UTC offset.")]}, code="invalid")
    if not isinstance(quote.source, str) or len(quote.source) > SOURCE_MAX_LENGTH:
        message = _("A source has at most %(length)s characters.") % {"length": SOURCE_MAX_LENGTH}
        raise ValidationError({"source": [message]}, code="invalid")
    return ExchangeRateQuote(
        base_currency=base, quote_currency=quote_currency, rate=stored, effective_from=start, source=quote.source
    )


@dataclass(frozen=True)
class _StoredRate:
    pk: int
    rate: Decimal
    effective_from: datetime
    effective_to: datetime | None


# SQLite keeps decimals as floating point (its own text-to-float conversion may be 1 or 2 units of the
# last binary place off) and Django reads them back to 15 significant digits.
SQLITE_RATE_TOLERANCE = Decimal("1E-14")


def _rates_equal(stored: Decimal, given: Decimal) -> bool:
    """Equal rates; on SQLite, equal to within what it keeps of a rate (a relative 10^-14)."""
    if connection.vendor == "sqlite":
        return abs(stored - given) <= SQLITE_RATE_TOLERANCE * max(abs(stored), abs(given))
    return stored == given


def _plain_rate(rate: Decimal) -> str:
    return f"{rate.normalize():f}"


def _moment(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _refusal(quote: ExchangeRateQuote, code: RefusalCode, reason: str) -> RateRefusal:
    field_name = "rate" if code in (RefusalCode.DIFFERENT_RATE, RefusalCode.DUPLICATE) else "effective_from"
    return RateRefusal(quote=quote, field=field_name, code=code, reason=reason)


def _pair_planned(
    base: str, quote_currency: str, stored: list[_StoredRate], quotes: list[ExchangeRateQuote], now: datetime
) -> tuple[PairImport, list[ExchangeRateQuote]]:
    """One pair's outcome under the history rule; stored and quotes oldest first. Also the accepted
    quotes (the rows to add, without their ends yet)."""
    plan = PairImport(base_currency=base, quote_currency=quote_currency, new=[])
    by_start = {row.effective_from: row for row in stored}
    first = stored[0] if stored else None
    last = stored[-1] if stored else None
    accepted: dict[datetime, ExchangeRateQuote] = {}
    for quote in quotes:
        start = quote.effective_from
        given = {"start": _moment(start), "rate": _plain_rate(quote.rate)}
        if start in accepted:
            if accepted[start].rate != quote.rate:
                reason = _("%(start)s is given twice with different rates (%(rate)s and %(other)s).") % {
                    **given,
                    "other": _plain_rate(accepted[start].rate),
                }
                plan.refused.append(_refusal(quote, RefusalCode.DUPLICATE, reason))
            continue
        row = by_start.get(start)
        if row is not None:
            if _rates_equal(row.rate, quote.rate):
                plan.unchanged += 1
            else:
                reason = _(
                    "A rate of %(stored)s is stored from %(start)s; a stored rate is never changed (given: %(rate)s)."
                ) % {**given, "stored": _plain_rate(row.rate)}
                plan.refused.append(_refusal(quote, RefusalCode.DIFFERENT_RATE, reason))
            continue
        if first is None or start < first.effective_from:
            accepted[start] = quote  # History fill: before every stored rate.
            continue
        if start < now:
            reason = _(
                "%(start)s is in the past and after the pair's first stored rate (%(first)s): calls stored since "
                "were converted at the rate then in force, which is never rewritten. Rates may be added from now "
                "on, or before %(first)s."
            ) % {**given, "first": _moment(first.effective_from)}
            plan.refused.append(_refusal(quote, RefusalCode.PAST, reason))
        elif start < last.effective_from or (last.effective_to is not None and start < last.effective_to):
            reason = _("%(start)s falls inside the stored history of the pair, whose spans never change.") % given
            plan.refused.append(_refusal(quote, RefusalCode.INSIDE_HISTORY, reason))
        else:
            accepted[start] = quote
    return plan, [accepted[start] for start in sorted(accepted)]


def _pair_ends(plan: PairImport, stored: list[_StoredRate], accepted: list[ExchangeRateQuote]) -> list[ExchangeRate]:
    """The rows to add, each ending where the next row (stored or added) begins; and plan.closed set
    when a newer one follows the stored open row (its pk only, loaded later)."""
    starts = sorted({row.effective_from for row in stored} | {quote.effective_from for quote in accepted})
    following = dict(zip(starts, [*starts[1:], None], strict=True))
    rows = [
        ExchangeRate(
            base_currency=quote.base_currency,
            quote_currency=quote.quote_currency,
            rate=quote.rate,
            effective_from=quote.effective_from,
            effective_to=following[quote.effective_from],
            source=quote.source,
        )
        for quote in accepted
    ]
    last = stored[-1] if stored else None
    if (
        last is not None
        and last.effective_to is None
        and accepted
        and accepted[-1].effective_from > last.effective_from
    ):
        newer = next(quote for quote in accepted if quote.effective_from > last.effective_from)
        plan.closed = RateClosed(rate=ExchangeRate(pk=last.pk), effective_to=newer.effective_from)
    return rows


def _stored_rates(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], list[_StoredRate]]:
    bases = {base for base, _quote in pairs}
    quotes = {quote for _base, quote in pairs}
    rows = ExchangeRate.objects.filter(base_currency__in=bases, quote_currency__in=quotes).order_by("effective_from")
    stored: dict[tuple[str, str], list[_StoredRate]] = {pair: [] for pair in pairs}
    for pk, base, quote, rate, start, end in rows.values_list(
        "pk", "base_currency", "quote_currency", "rate", "effective_from", "effective_to"
    ):
        if (base, quote) in stored:
            stored[(base, quote)].append(_StoredRate(pk=pk, rate=rate, effective_from=start, effective_to=end))
    return stored


def _rate_writers_serialized() -> None:
    """One writer of the history at a time, until the transaction ends, so that what an import read is
    what it writes against (pairs without a row yet included). On PostgreSQL a SHARE ROW EXCLUSIVE
    table lock: it waits for other writers of rates and makes them wait, but not readers (ingestion's
    rate books) nor the foreign-key checks of calls stored meanwhile (ROW SHARE, FOR KEY SHARE: closing
    the open row changes no key). SQLite has one writer anyway (a concurrent import fails on the unique
    constraints and writes nothing)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{ExchangeRate._meta.db_table}" IN SHARE ROW EXCLUSIVE MODE')


@transaction.atomic
def exchange_rates_import(*, quotes: Iterable[ExchangeRateQuote], apply: bool, now: datetime) -> ExchangeRatesImport:
    """Put the quotes in the rate history as its rule says (above), all or none of the accepted ones:
    with apply False, only report what it would do. Invalid quotes are refused (ExchangeRatesImport.invalid),
    the others per pair (new, unchanged, the open row closed, refused with the reason)."""
    if not isinstance(now, datetime) or timezone.is_naive(now):
        raise ValidationError({"now": [_("now needs a UTC offset.")]})
    invalid: list[RateRefusal] = []
    by_pair: dict[tuple[str, str], list[ExchangeRateQuote]] = {}
    for quote in quotes:
        try:
            checked = exchange_rate_validated(quote=quote)
        except ValidationError as error:
            field_name, messages = next(iter(error.message_dict.items()))
            invalid.append(RateRefusal(quote=quote, field=field_name, code=RefusalCode.INVALID, reason=messages[0]))
            continue
        by_pair.setdefault(checked.pair, []).append(checked)
    pairs = set(by_pair)
    if apply and pairs:
        _rate_writers_serialized()
    stored = _stored_rates(pairs) if pairs else {}
    planned: dict[tuple[str, str], PairImport] = {}
    for pair in sorted(by_pair):
        pair_quotes = sorted(by_pair[pair], key=lambda quote: quote.effective_from)
        plan, accepted = _pair_planned(*pair, stored[pair], pair_quotes, now)
        plan.new = _pair_ends(plan, stored[pair], accepted)
        planned[pair] = plan
    closed = [plan.closed for plan in planned.values() if plan.closed is not None]
    if closed:
        loaded = ExchangeRate.objects.in_bulk([item.rate.pk for item in closed])
        for plan in planned.values():
            if plan.closed is not None:
                plan.closed = RateClosed(rate=loaded[plan.closed.rate.pk], effective_to=plan.closed.effective_to)
    if apply:
        for item in (plan.closed for plan in planned.values() if plan.closed is not None):
            ExchangeRate.objects.filter(pk=item.rate.pk, effective_to__isnull=True).update(
                effective_to=item.effective_to
            )
            item.rate.effective_to = item.effective_to
        new_rows = [row for plan in planned.values() for row in plan.new]
        saved = iter(ExchangeRate.objects.bulk_create(new_rows, batch_size=2000))
        for plan in planned.values():
            plan.new = [next(saved) for _row in plan.new]
    return ExchangeRatesImport(applied=apply, pairs=planned, invalid=invalid)


@transaction.atomic
def exchange_rate_add(
    *,
    base_currency: str,
    quote_currency: str,
    rate: Decimal,
    effective_from: datetime | None = None,
    source: str = "",
    now: datetime | None = None,
) -> ExchangeRate:
    """One rate into the history (from effective_from, default now), as exchange_rates_import's rule
    says; the stored row when an equal one is there. Refused: ValidationError({field: reason})."""
    now = now or timezone.now()
    quote = ExchangeRateQuote(
        base_currency=base_currency,
        quote_currency=quote_currency,
        rate=rate,
        effective_from=effective_from or now,
        source=source,
    )
    done = exchange_rates_import(quotes=[quote], apply=True, now=now)
    if done.refused:
        refusal = done.refused[0]
        raise ValidationError({refusal.field: [refusal.reason]}, code=refusal.code)
    if done.new:
        return done.new[0]
    checked = exchange_rate_validated(quote=quote)
    return ExchangeRate.objects.get(
        base_currency=checked.base_currency,
        quote_currency=checked.quote_currency,
        effective_from=checked.effective_from,
    )
