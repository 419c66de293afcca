"""Reads of prices: which price was in force for a model at a moment."""

import functools
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import connection

from pricing.models import ModelPriceVersion, ModelPricing
from pricing.providers import provider_canonical

if TYPE_CHECKING:
    from pricing.litellm import PriceQuote


@dataclass
class PriceBook:
    """The price history of a set of models, loaded once for a batch of usage records."""

    pricing_by_model: dict[str, ModelPricing]
    _versions: dict[str, list[ModelPriceVersion]] = field(default_factory=dict)
    _starts: dict[str, list[datetime]] = field(default_factory=dict)

    def add_version(self, version: ModelPriceVersion, model_name: str) -> None:
        self._versions.setdefault(model_name, []).append(version)

    def finish(self) -> "PriceBook":
        for model_name, versions in self._versions.items():
            versions.sort(key=lambda v: v.effective_from)
            self._starts[model_name] = [v.effective_from for v in versions]
        return self

    def pricing(self, model_name: str) -> ModelPricing | None:
        return self.pricing_by_model.get(model_name)

    def versions(self, model_name: str) -> list[ModelPriceVersion]:
        """The model's versions, oldest first."""
        return self._versions.get(model_name, [])

    def version_at(self, model_name: str, at: datetime) -> ModelPriceVersion | None:
        """The version whose half-open span [effective_from, effective_to) contains `at`."""
        starts = self._starts.get(model_name)
        if not starts:
            return None
        index = bisect_right(starts, at) - 1
        if index < 0:
            return None
        version = self._versions[model_name][index]
        if version.effective_to is not None and at >= version.effective_to:
            return None
        return version


def price_book_for_models(*, model_names: Iterable[str]) -> PriceBook:
    """The price histories of these models, in one query (ingestion loads one per batch). A model
    with no price version is left out: no price was ever in force for it.

    PostgreSQL: the SQL is written once per process from the models' metadata and the rows become
    instances with from_db, so a batch pays for the query, not for compiling it each time."""
    book = PriceBook(pricing_by_model={})
    names = sorted(set(model_names))
    if connection.vendor != "postgresql":  # SQLite's raw values need the ORM's converters (dates, decimals).
        versions = ModelPriceVersion.objects.filter(pricing__model_name__in=names).select_related("pricing")
        for version in versions:
            book.pricing_by_model.setdefault(version.pricing.model_name, version.pricing)
            book.add_version(version, version.pricing.model_name)
        return book.finish()
    if not names:
        return book.finish()
    with connection.cursor() as cursor:
        cursor.execute(_price_book_sql(), [names])
        rows = cursor.fetchall()
    version_columns = len(_VERSION_FIELDS)
    alias = connection.alias
    for row in rows:
        version = ModelPriceVersion.from_db(alias, _VERSION_NAMES, row[:version_columns])
        pricing = book.pricing_by_model.get(row[version_columns + _PRICING_NAME_INDEX])
        if pricing is None:
            pricing = ModelPricing.from_db(alias, _PRICING_NAMES, row[version_columns:])
            book.pricing_by_model[pricing.model_name] = pricing
        version.pricing = pricing  # As select_related("pricing") sets it: no query on access.
        book.add_version(version, pricing.model_name)
    return book.finish()


_VERSION_FIELDS = ModelPriceVersion._meta.concrete_fields
_PRICING_FIELDS = ModelPricing._meta.concrete_fields
_VERSION_NAMES = [f.attname for f in _VERSION_FIELDS]
_PRICING_NAMES = [f.attname for f in _PRICING_FIELDS]
_PRICING_NAME_INDEX = _PRICING_NAMES.index("model_name")


@functools.cache
def _price_book_sql() -> str:
    """Every column of the versions and their pricing rows, for an array of model names (PostgreSQL)."""
    qn = connection.ops.quote_name
    version_table, pricing_table = ModelPriceVersion._meta.db_table, ModelPricing._meta.db_table
    columns = [f"v.{qn(f.column)}" for f in _VERSION_FIELDS] + [f"p.{qn(f.column)}" for f in _PRICING_FIELDS]
    pricing_fk = qn(ModelPriceVersion._meta.get_field("pricing").column)
    name = qn(ModelPricing._meta.get_field("model_name").column)
    return (
        f"SELECT {', '.join(columns)} FROM {version_table} v "  # noqa: S608 -- names from metadata
        f"JOIN {pricing_table} p ON p.{qn(ModelPricing._meta.pk.column)} = v.{pricing_fk} "
        f"WHERE p.{name} = ANY(%s::text[])"
    )


def price_version_current(*, pricing: ModelPricing) -> ModelPriceVersion | None:
    return pricing.price_versions.filter(effective_to__isnull=True).first()


def price_versions_by_model() -> dict[str, list[ModelPriceVersion]]:
    grouped: dict[str, list[ModelPriceVersion]] = defaultdict(list)
    for version in ModelPriceVersion.objects.select_related("pricing").order_by(
        "pricing__model_name", "effective_from"
    ):
        grouped[version.pricing.model_name].append(version)
    return dict(grouped)


@dataclass(frozen=True)
class PriceChange:
    """How an imported quote differs from the price in force (pricing is None for a model not yet known).
    changed_fields names the differing price fields, and "tiers" when the long-context tiers differ."""

    quote: "PriceQuote"
    pricing: ModelPricing | None
    changed_fields: tuple[str, ...]


# Every price a quote carries, as ModelPricing names it (tokens.md), and its tiers apart.
QUOTED_PRICE_FIELDS = (
    "input_price_per_million",
    "cached_input_price_per_million",
    "cache_write_5m_price_per_million",
    "cache_write_1h_price_per_million",
    "input_audio_price_per_million",
    "output_price_per_million",
    "reasoning_price_per_million",
    "output_audio_price_per_million",
    "output_image_price_per_million",
    "price_per_call",
)
TIER_PRICE_FIELDS = tuple(name for name in QUOTED_PRICE_FIELDS if name != "price_per_call")
TierKey = tuple[tuple[int, tuple], ...]


def _tier_key(tiers: Iterable) -> TierKey:
    """Tiers comparable whatever holds them (quote tiers, ModelPriceTier rows): by threshold, every price."""
    rows = ((tier.above_prompt_tokens, tuple(getattr(tier, name) for name in TIER_PRICE_FIELDS)) for tier in tiers)
    return tuple(sorted(rows))


def _tiers_in_force(pricings: list[ModelPricing]) -> dict[int, TierKey]:
    """pricing id -> its current tiers (ModelPriceTier rows, pricing.models)."""
    # At merge: a module-level import (the tier table arrives with the price fields).
    from pricing.models import ModelPriceTier

    grouped: dict[int, list] = defaultdict(list)
    for tier in ModelPriceTier.objects.filter(pricing__in=pricings):
        grouped[tier.pricing_id].append(tier)
    return {pricing_id: _tier_key(tiers) for pricing_id, tiers in grouped.items()}


def price_changes_from_quotes(
    *, quotes: dict[str, "PriceQuote"], include_new: bool
) -> tuple[list[PriceChange], list[str]]:
    """The quotes that would change something (differing prices or tiers of known models, and new models
    if asked), and the names of known models skipped because they are priced in another currency."""
    known = {p.model_name: p for p in ModelPricing.objects.filter(model_name__in=quotes)}
    tiers_by_pricing = _tiers_in_force(list(known.values())) if known else {}
    changes = []
    other_currency = []
    for model_name in sorted(quotes):
        quote = quotes[model_name]
        pricing = known.get(model_name)
        if pricing is None:
            if include_new:
                changes.append(PriceChange(quote=quote, pricing=None, changed_fields=QUOTED_PRICE_FIELDS))
            continue
        if pricing.currency != quote.currency:
            other_currency.append(model_name)
            continue
        differing = tuple(f for f in QUOTED_PRICE_FIELDS if getattr(pricing, f) != getattr(quote, f))
        if tiers_by_pricing.get(pricing.pk, ()) != _tier_key(quote.tiers):
            differing += ("tiers",)
        if differing:
            changes.append(PriceChange(quote=quote, pricing=pricing, changed_fields=differing))
    return changes, other_currency


def model_currencies(*, using: str = "default") -> dict[str, str]:
    """model_name -> the currency of its prices and costs, for every priced model."""
    return dict(ModelPricing.objects.using(using).values_list("model_name", "currency"))


def model_names_of_provider(*, provider: str) -> set[str]:
    """The priced models of a provider, however it is spelled (`openai`, `OpenAI`, `vertex_ai`: the
    company's name, pricing.providers)."""
    rows = ModelPricing.objects.filter(provider__iexact=provider_canonical(provider))
    return set(rows.values_list("model_name", flat=True))


def model_providers() -> dict[str, tuple[str, str]]:
    """model_name -> (provider, currency) of every priced model."""
    rows = ModelPricing.objects.values_list("model_name", "provider", "currency")
    return {name: (provider, currency) for name, provider, currency in rows}


def model_pricing_get(*, model_name: str) -> ModelPricing | None:
    return ModelPricing.objects.filter(model_name=model_name).first()


def model_pricings_budgeted() -> list[ModelPricing]:
    """The models with a monthly budget, by name."""
    return list(ModelPricing.objects.filter(monthly_budget__isnull=False).order_by("model_name"))
