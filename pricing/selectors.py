"""Reads of prices: which price was in force for a model at a moment."""

import functools
import threading
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import Q

from core.money import cost_converted
from pricing.generation import generation_select_sql
from pricing.matching import NameMatch, NameMatcher, name_matcher_cached
from pricing.models import (
    PRICE_FIELDS,
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

if TYPE_CHECKING:
    from pricing.litellm import PriceQuote


@dataclass
class PriceBook:
    """The price history of a set of models, loaded once for a batch of usage records."""

    pricing_by_model: dict[str, ModelPricing]
    _versions: dict[str, list[ModelPriceVersion]] = field(default_factory=dict)
    _starts: dict[str, list[datetime]] = field(default_factory=dict)
    # Resolves sent names (aliases, prefixes, expressions: pricing.matching); None: names as they are.
    matcher: NameMatcher | None = None
    # A cached book (price_book_cached): the price generation it was read under, the database, and
    # the sent names it was loaded for; None: a book for one use (a reprice chunk, a report).
    cache_key: tuple | None = None
    covered: frozenset[str] = frozenset()
    # What readers derive from a cached book once, not once per batch: rate books by quote currency
    # (rate_book_for_prices) and usage.services.BatchPricer's prepared histories and names.
    rate_books: dict[str, "RateBook"] = field(default_factory=dict)
    prepared: dict = field(default_factory=dict)

    def resolve(self, name: str) -> NameMatch:
        """Which of the book's models a sent name is priced as (cached per name)."""
        if self.matcher is None:
            self.matcher = NameMatcher(model_names=self.pricing_by_model, patterns=())
        return self.matcher.match(name)

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
    """The price histories of the models these names (as sent) are priced as, in one query
    (ingestion loads one per batch); PriceBook.resolve says which model a name is priced as
    (pricing.matching). A model with no price version is left out: no price was ever in force for it.

    PostgreSQL: the SQL is written once per process from the models' metadata and the rows become
    instances with from_db, so a batch pays for the query, not for compiling it each time. It loads
    every model a name could match: by its model_name, an alias equal to a name, a prefix of a name,
    and every model with a regular expression (they are few, and only Python's `re` can test them).
    Tiers take a second query, only when a loaded version has any."""
    names = sorted(set(model_names))
    if connection.vendor != "postgresql":  # SQLite's raw values need the ORM's converters (dates, decimals).
        return _price_book_orm(names)
    book = PriceBook(pricing_by_model={})
    if not names:
        book.matcher = NameMatcher(model_names=(), patterns=())
        return book.finish()
    with connection.cursor() as cursor:
        cursor.execute(_price_book_sql(), [names])
        rows = cursor.fetchall()
    version_columns = len(_VERSION_FIELDS)
    pricing_columns = version_columns + len(_PRICING_FIELDS)
    alias = connection.alias
    patterns = []
    tiered = False
    for *row, has_tiers in rows:
        tiered = tiered or has_tiers
        version = ModelPriceVersion.from_db(alias, _VERSION_NAMES, row[:version_columns])
        pricing = book.pricing_by_model.get(row[version_columns + _PRICING_NAME_INDEX])
        if pricing is None:
            pricing = ModelPricing.from_db(alias, _PRICING_NAMES, row[version_columns:pricing_columns])
            book.pricing_by_model[pricing.model_name] = pricing
            kinds, texts = row[pricing_columns], row[pricing_columns + 1]
            patterns += [(pricing.model_name, kind, text) for kind, text in zip(kinds, texts, strict=True)]
        version.pricing = pricing  # As select_related("pricing") sets it: no query on access.
        book.add_version(version, pricing.model_name)
    book.matcher = name_matcher_cached(frozenset(book.pricing_by_model), tuple(sorted(patterns)))
    tiers = []
    if tiered:  # Most batches price no tiered model: then no second query.
        with connection.cursor() as cursor:
            cursor.execute(_price_book_tiers_sql(), [sorted(book.pricing_by_model)])
            tiers = [ModelPriceVersionTier.from_db(alias, _TIER_NAMES, row) for row in cursor.fetchall()]
    _tiers_attach(book, tiers)
    return book.finish()


_book_cache = threading.local()  # Per thread: each thread has its own connection and transaction.
CACHED_NAMES_AT_MOST = 4096  # More sent names than this: the book is read again for the batch's alone.


def price_book_cached(*, model_names: Iterable[str], generation: int | None) -> PriceBook:
    """price_book_for_models, kept per process (per thread) while the price generation
    (pricing.generation) read in the caller's transaction is the one the book was read under, and
    the book covers the batch's names (else the names seen so far and the new ones are read again).

    The generation is read before the book, so a book never claims an older generation than its
    content: an edit committing between the two makes the next batch read a new generation and
    reload. A batch that finds its generation cached prices as a fresh read at the moment it read
    the generation would. None (no generation row: a flushed test database): a fresh book each time."""
    names = model_names if isinstance(model_names, set | frozenset) else set(model_names)
    if generation is None:
        return price_book_for_models(model_names=names)
    key = (connection.alias, connection.settings_dict.get("NAME"), generation)
    cached = getattr(_book_cache, "book", None)
    same_generation = cached is not None and cached.cache_key == key
    if same_generation:
        if names <= cached.covered:
            return cached
        if len(cached.covered) + len(names) <= CACHED_NAMES_AT_MOST:
            if _names_load_nothing_new(cached, names - cached.covered):
                cached.covered = cached.covered | names
                return cached
            names = cached.covered | names
    book = price_book_for_models(model_names=names)
    book.cache_key, book.covered = key, frozenset(names)
    if same_generation and book.covered >= cached.covered:
        # Read under the same generation, the names already covered price as they did: their
        # prepared histories and resolved names stay (new names prepare theirs on first use).
        book.prepared = cached.prepared
    _book_cache.book = book
    return book


def price_book_cache_forget() -> None:
    _book_cache.book = None
    _book_cache.name_index = None


@dataclass(frozen=True)
class _NameIndex:
    """What decides which models price_book_for_models loads for a name (PostgreSQL): the model
    names, aliases and prefixes of every model with a price version, read once per price generation.
    Models with a regular expression are loaded for any name, so they need no entry here."""

    cache_key: tuple
    model_names: frozenset[str]
    aliases: dict[str, str]
    prefixes: tuple[tuple[str, str], ...]

    def models_loaded_for(self, name: str) -> set[str]:
        loaded = {model for prefix, model in self.prefixes if name.startswith(prefix)}
        if name in self.model_names:
            loaded.add(name)
        if name in self.aliases:
            loaded.add(self.aliases[name])
        return loaded


def _names_load_nothing_new(book: PriceBook, new_names: set[str]) -> bool:
    """Whether reading the book again with these names too would load the very rows it holds: same
    generation, so same rows, and no new name is a model name, alias or prefix of a model it lacks
    (a snapshot name the book's expressions price, say). Then the book can cover them as it is,
    instead of a ~5 ms read for every batch that brings a name not seen before.
    SQLite's book loads by resolving names instead (_price_book_orm): it is read again, as before."""
    if connection.vendor != "postgresql":
        return False
    index = _name_index(book.cache_key)
    if index is None:
        return False
    loaded = book.pricing_by_model
    return all(model in loaded for name in new_names for model in index.models_loaded_for(name))


def _name_index(cache_key: tuple) -> _NameIndex | None:
    """The index read under the book's generation; None when prices changed since (read the book again)."""
    index = getattr(_book_cache, "name_index", None)
    if index is None or index.cache_key != cache_key:
        index = _name_index_read(cache_key)
        if index is None:
            return None
        _book_cache.name_index = index
    return index


def _name_index_read(cache_key: tuple) -> _NameIndex | None:
    with connection.cursor() as cursor:
        cursor.execute(_name_index_sql())
        rows = cursor.fetchall()
    # One statement, one snapshot: its generation says which prices its rows are.
    if not rows or rows[0][3] != cache_key[2]:
        return None
    aliases, prefixes = {}, []
    for model_name, kind, pattern, _generation in rows:
        if kind == PatternKind.EXACT:
            aliases[pattern] = model_name
        elif kind == PatternKind.PREFIX:
            prefixes.append((pattern, model_name))
    return _NameIndex(
        cache_key=cache_key,
        model_names=frozenset(row[0] for row in rows),
        aliases=aliases,
        prefixes=tuple(prefixes),
    )


@functools.cache
def _name_index_sql() -> str:
    """Each model with a price version, with each of its aliases and prefixes (or NULLs), and the
    price generation, in one statement (PostgreSQL)."""
    qn = connection.ops.quote_name
    pricing_table, pattern_table = ModelPricing._meta.db_table, ModelNamePattern._meta.db_table
    version_table = ModelPriceVersion._meta.db_table
    pk, name = qn(ModelPricing._meta.pk.column), qn(ModelPricing._meta.get_field("model_name").column)
    pattern_fk = qn(ModelNamePattern._meta.get_field("pricing").column)
    version_fk = qn(ModelPriceVersion._meta.get_field("pricing").column)
    exact, prefix = PatternKind.EXACT.value, PatternKind.PREFIX.value
    return (
        f"SELECT p.{name}, q.kind, q.pattern, ({generation_select_sql()}) FROM {pricing_table} p "  # noqa: S608
        f"LEFT JOIN {pattern_table} q ON q.{pattern_fk} = p.{pk} AND q.kind IN ('{exact}', '{prefix}') "
        f"WHERE EXISTS (SELECT 1 FROM {version_table} v WHERE v.{version_fk} = p.{pk})"
    )


def _price_book_orm(names: list[str]) -> PriceBook:
    book = PriceBook(pricing_by_model={})
    matcher = name_matcher_all()
    wanted = set(names) | {matcher.match(name).model_name for name in names} - {None}
    versions = ModelPriceVersion.objects.filter(pricing__model_name__in=wanted).select_related("pricing")
    for version in versions:
        book.pricing_by_model.setdefault(version.pricing.model_name, version.pricing)
        book.add_version(version, version.pricing.model_name)
    book.matcher = matcher
    _tiers_attach(book, list(ModelPriceVersionTier.objects.filter(version__pricing__model_name__in=wanted)))
    return book.finish()


def _tiers_attach(book: PriceBook, tiers: list[ModelPriceVersionTier]) -> None:
    """Give each version of the book its long-context tiers (none: an empty list, no query later)."""
    by_version: dict[int, list[ModelPriceVersionTier]] = defaultdict(list)
    for tier in tiers:
        by_version[tier.version_id].append(tier)
    for versions in book._versions.values():
        for version in versions:
            version.price_tiers_set(by_version.get(version.pk, []))


_VERSION_FIELDS = ModelPriceVersion._meta.concrete_fields
_PRICING_FIELDS = ModelPricing._meta.concrete_fields
_VERSION_NAMES = [f.attname for f in _VERSION_FIELDS]
_PRICING_NAMES = [f.attname for f in _PRICING_FIELDS]
_PRICING_NAME_INDEX = _PRICING_NAMES.index("model_name")


_TIER_FIELDS = ModelPriceVersionTier._meta.concrete_fields
_TIER_NAMES = [f.attname for f in _TIER_FIELDS]


@functools.cache
def _price_book_tiers_sql() -> str:
    """Every column of the tiers of the versions of an array of model names (PostgreSQL)."""
    qn = connection.ops.quote_name
    tier_table, version_table = ModelPriceVersionTier._meta.db_table, ModelPriceVersion._meta.db_table
    pricing_table = ModelPricing._meta.db_table
    columns = [f"t.{qn(f.column)}" for f in _TIER_FIELDS]
    version_fk = qn(ModelPriceVersionTier._meta.get_field("version").column)
    pricing_fk = qn(ModelPriceVersion._meta.get_field("pricing").column)
    name = qn(ModelPricing._meta.get_field("model_name").column)
    return (
        f"SELECT {', '.join(columns)} FROM {tier_table} t "  # noqa: S608 -- names from metadata
        f"JOIN {version_table} v ON v.{qn(ModelPriceVersion._meta.pk.column)} = t.{version_fk} "
        f"JOIN {pricing_table} p ON p.{qn(ModelPricing._meta.pk.column)} = v.{pricing_fk} "
        f"WHERE p.{name} = ANY(%s::text[])"
    )


@functools.cache
def _price_book_sql() -> str:
    """Every column of the versions and their pricing rows, each pricing row's patterns (kinds,
    texts), and whether the version has tiers, of the models an array of sent names could be priced
    as (PostgreSQL)."""
    qn = connection.ops.quote_name
    version_table, pricing_table = ModelPriceVersion._meta.db_table, ModelPricing._meta.db_table
    pattern_table = ModelNamePattern._meta.db_table
    columns = [f"v.{qn(f.column)}" for f in _VERSION_FIELDS] + [f"p.{qn(f.column)}" for f in _PRICING_FIELDS]
    tier_table, tier_fk = (
        ModelPriceVersionTier._meta.db_table,
        qn(ModelPriceVersionTier._meta.get_field("version").column),
    )
    version_pk = qn(ModelPriceVersion._meta.pk.column)
    has_tiers = f"EXISTS (SELECT 1 FROM {tier_table} r WHERE r.{tier_fk} = v.{version_pk})"  # noqa: S608
    pricing_fk = qn(ModelPriceVersion._meta.get_field("pricing").column)
    pattern_fk = qn(ModelNamePattern._meta.get_field("pricing").column)
    pk = qn(ModelPricing._meta.pk.column)
    name = qn(ModelPricing._meta.get_field("model_name").column)
    exact, prefix, regex = PatternKind.EXACT.value, PatternKind.PREFIX.value, PatternKind.REGEX.value
    patterns_of = f"FROM {pattern_table} q WHERE q.{pattern_fk} = p.{pk} ORDER BY q.id"
    return (
        f"WITH names AS (SELECT unnest(%s::text[]) AS n), wanted AS ("  # noqa: S608 -- names from metadata
        f"SELECT {pk} AS id FROM {pricing_table} WHERE {name} IN (SELECT n FROM names) "
        f"UNION SELECT {pattern_fk} FROM {pattern_table} t WHERE t.kind = '{regex}' "
        f"OR (t.kind = '{exact}' AND t.pattern IN (SELECT n FROM names)) "
        f"OR (t.kind = '{prefix}' AND EXISTS (SELECT 1 FROM names WHERE starts_with(n, t.pattern)))) "
        f"SELECT {', '.join(columns)}, ARRAY(SELECT q.kind::text {patterns_of}), "
        f"ARRAY(SELECT q.pattern::text {patterns_of}), {has_tiers} "
        f"FROM {version_table} v JOIN {pricing_table} p ON p.{pk} = v.{pricing_fk} "
        f"WHERE p.{pk} IN (SELECT id FROM wanted)"
    )


def name_matcher_all() -> NameMatcher:
    """A matcher over every priced model and pattern (two queries)."""
    patterns = ModelNamePattern.objects.values_list("pricing__model_name", "kind", "pattern").order_by("pk")
    return NameMatcher(model_names=ModelPricing.objects.values_list("model_name", flat=True), patterns=list(patterns))


def pricing_match(*, name: str) -> NameMatch:
    """Which priced model a model name (as a client sends it) is priced as, and by which rule."""
    return name_matcher_all().match(name)


def price_version_spans(
    *, version_ids: Iterable[int], using: str = "default"
) -> dict[int, tuple[datetime, datetime | None]]:
    """version id -> its half-open span (effective_from, effective_to; None: still in force)."""
    rows = ModelPriceVersion.objects.using(using).filter(pk__in=list(version_ids))
    return {pk: (start, end) for pk, start, end in rows.values_list("pk", "effective_from", "effective_to")}


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


# Every price a quote carries (pricing.models' declaration), and its tiers' prices.
QUOTED_PRICE_FIELDS = PRICE_FIELDS
TIER_PRICE_FIELDS = TOKEN_PRICE_FIELDS
TierKey = tuple[tuple[int, tuple], ...]


def _tier_key(tiers: Iterable) -> TierKey:
    """Tiers comparable whatever holds them (quote tiers, ModelPriceTier rows): by threshold, every price."""
    rows = ((tier.above_prompt_tokens, tuple(getattr(tier, name) for name in TIER_PRICE_FIELDS)) for tier in tiers)
    return tuple(sorted(rows))


def _tiers_in_force(pricings: list[ModelPricing]) -> dict[int, TierKey]:
    """pricing id -> its current tiers (ModelPriceTier rows, pricing.models)."""
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


def model_pricing_for_name(*, name: str) -> ModelPricing | None:
    """The priced model a name as sent is priced as (its model_name, an alias, a prefix or an
    expression: pricing.matching), or None when it matches none or is ambiguous."""
    found = model_pricing_get(model_name=name)
    if found is not None:
        return found
    matched = pricing_match(name=name).model_name
    return None if matched is None else model_pricing_get(model_name=matched)


def model_pricings_budgeted() -> list[ModelPricing]:
    """The models with a monthly budget, by name."""
    return list(ModelPricing.objects.filter(monthly_budget__isnull=False).order_by("model_name"))


class Conversion(NamedTuple):
    """A cost in the reporting currency: `amount` None when no rate was in force (an unconverted
    call); `rate` None when no rate was needed (the cost already is in the reporting currency).
    A tuple: ingestion makes one per converted call."""

    amount: Decimal | None
    rate: ExchangeRate | None


@dataclass
class RateBook:
    """The rate histories into one quote currency (the reporting currency), for a set of base
    currencies, loaded once (ingestion: once per batch)."""

    quote_currency: str
    _rates: dict[str, list[ExchangeRate]] = field(default_factory=dict)
    _starts: dict[str, list[datetime]] = field(default_factory=dict)
    # The rate each currency's last lookup found: a batch's calls mostly fall in one rate's span.
    _last: dict[str, ExchangeRate] = field(default_factory=dict)

    def add_rate(self, rate: ExchangeRate) -> None:
        self._rates.setdefault(rate.base_currency, []).append(rate)

    def finish(self) -> "RateBook":
        for base_currency, rates in self._rates.items():
            rates.sort(key=lambda rate: rate.effective_from)
            self._starts[base_currency] = [rate.effective_from for rate in rates]
        return self

    def rate_at(self, base_currency: str, at: datetime) -> ExchangeRate | None:
        """The rate whose half-open span [effective_from, effective_to) contains `at`."""
        last = self._last.get(base_currency)
        if last is not None and last.effective_from <= at and (last.effective_to is None or at < last.effective_to):
            return last
        starts = self._starts.get(base_currency)
        if not starts:
            return None
        index = bisect_right(starts, at) - 1
        if index < 0:
            return None
        rate = self._rates[base_currency][index]
        if rate.effective_to is not None and at >= rate.effective_to:
            return None
        self._last[base_currency] = rate
        return rate

    def convert(self, amount: Decimal, currency: str, at: datetime) -> Conversion:
        """`amount` of `currency` at moment `at`, in the quote currency."""
        if currency == self.quote_currency:
            return Conversion(amount, None)
        rate = self.rate_at(currency, at)
        if rate is None:
            return Conversion(None, None)
        return Conversion(cost_converted(amount, rate.rate), rate)


def reporting_currency() -> str:
    """The currency every sum across models is in (AICOST_REPORTING_CURRENCY)."""
    return settings.AICOST_REPORTING_CURRENCY


def exchange_rate_book(
    *,
    base_currencies: Iterable[str],
    quote_currency: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> RateBook:
    """The rates from `base_currencies` into `quote_currency` (default: the reporting currency) in
    force at some moment of [start, end) (None: unbounded), in one query."""
    quote = quote_currency or reporting_currency()
    book = RateBook(quote_currency=quote)
    bases = sorted(set(base_currencies) - {quote})
    if not bases:
        return book.finish()
    rates = ExchangeRate.objects.filter(base_currency__in=bases, quote_currency=quote)
    if end is not None:
        rates = rates.filter(effective_from__lt=end)
    if start is not None:
        rates = rates.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=start))
    for rate in rates:
        book.add_rate(rate)
    return book.finish()


def rate_book_for_prices(book: PriceBook, *, start: datetime | None = None, end: datetime | None = None) -> RateBook:
    """The rates into the reporting currency from every currency `book`'s models are priced in, in
    force at some moment of [start, end); no query when they are all priced in the reporting currency.
    A cached book (price_book_cached) keeps its rate book, every span, read once per generation:
    its answers in [start, end) are the same (the triggers watch the rates too)."""
    if book.cache_key is not None:
        quote = reporting_currency()
        rates = book.rate_books.get(quote)
        if rates is None:
            rates = book.rate_books[quote] = _rate_book_for(book, quote_currency=quote)
        return rates
    return _rate_book_for(book, start=start, end=end)


def _rate_book_for(
    book: PriceBook, *, quote_currency: str | None = None, start: datetime | None = None, end: datetime | None = None
) -> RateBook:
    currencies = {pricing.currency for pricing in book.pricing_by_model.values()}
    for model_name in book.pricing_by_model:
        currencies.update(version.currency for version in book.versions(model_name))
    return exchange_rate_book(base_currencies=currencies, quote_currency=quote_currency, start=start, end=end)
