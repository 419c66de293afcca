from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.money import (
    COST_DECIMAL_PLACES,
    COST_MAX_DIGITS,
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
    RATE_DECIMAL_PLACES,
    RATE_MAX_DIGITS,
)


class ModelType(models.TextChoices):
    CHAT = "chat", _("Chat")
    REASONING = "reasoning", _("Reasoning")
    EMBEDDING = "embedding", _("Embedding")
    IMAGE = "image", _("Image")


def _price_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, **kwargs)


def _cost_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, **kwargs)


# The token prices of tokens.md, in the order of the cost formula (usage.costing): each per one
# million tokens of its kind; empty (None) falls back as usage.costing.token_prices_resolved says.
TOKEN_PRICE_FIELDS = (
    "input_price_per_million",
    "cached_input_price_per_million",
    "cache_write_5m_price_per_million",
    "cache_write_1h_price_per_million",
    "input_audio_price_per_million",
    "output_price_per_million",
    "reasoning_price_per_million",
    "output_audio_price_per_million",
    "output_image_price_per_million",
)
REQUIRED_TOKEN_PRICE_FIELDS = ("input_price_per_million", "output_price_per_million")
# Every price a version keeps: the token prices and the fixed fee per call (never tiered).
PRICE_FIELDS = (*TOKEN_PRICE_FIELDS, "price_per_call")


def _optional_price(help_text: str, **kwargs) -> models.DecimalField:
    return _price_field(null=True, blank=True, help_text=help_text, **kwargs)


def _prices_not_negative(name: str, fields: tuple[str, ...]) -> models.CheckConstraint:
    condition = models.Q()
    for field_name in fields:
        if field_name in REQUIRED_TOKEN_PRICE_FIELDS:
            condition &= models.Q(**{f"{field_name}__gte": 0})
        else:
            condition &= models.Q(**{f"{field_name}__isnull": True}) | models.Q(**{f"{field_name}__gte": 0})
    return models.CheckConstraint(condition=condition, name=name)


class TokenPrices(models.Model):
    """A full set of token prices per one million tokens (a model's, a version's, a tier's)."""

    input_price_per_million = _price_field(
        help_text=_("Price of one million prompt (input) tokens."), verbose_name=_("input price per million")
    )
    cached_input_price_per_million = _optional_price(
        _("Price of one million prompt tokens read from the provider's cache; empty: the input price."),
        verbose_name=_("cached input price per million"),
    )
    cache_write_5m_price_per_million = _optional_price(
        _(
            "Price of one million prompt tokens written to a 5-minute cache (or a cache write of no stated "
            "duration); empty: the input price."
        ),
        verbose_name=_("cache write 5m price per million"),
    )
    cache_write_1h_price_per_million = _optional_price(
        _(
            "Price of one million prompt tokens written to a 1-hour cache; empty: the 5-minute write price, "
            "else the input price."
        ),
        verbose_name=_("cache write 1h price per million"),
    )
    input_audio_price_per_million = _optional_price(
        _("Price of one million audio prompt tokens; empty: the input price."),
        verbose_name=_("input audio price per million"),
    )
    output_price_per_million = _price_field(
        help_text=_("Price of one million completion (output) tokens."), verbose_name=_("output price per million")
    )
    reasoning_price_per_million = _optional_price(
        _("Price of one million reasoning (thinking) output tokens; empty: the output price."),
        verbose_name=_("reasoning price per million"),
    )
    output_audio_price_per_million = _optional_price(
        _("Price of one million audio output tokens; empty: the output price."),
        verbose_name=_("output audio price per million"),
    )
    output_image_price_per_million = _optional_price(
        _("Price of one million image output tokens; empty: the output price."),
        verbose_name=_("output image price per million"),
    )

    class Meta:
        abstract = True


def _fee_field(**kwargs) -> models.DecimalField:
    return _price_field(
        null=True,
        blank=True,
        help_text=_("A fixed fee per successful call, in the model's currency (not per million); empty: none."),
        **kwargs,
    )


class ModelPricing(TokenPrices):
    """One AI model a team calls, its current list price and budget (its running counters are
    usage's: usage.models.UsageCounter).

    The prices here are the ones in force now; every price that was ever in force
    is kept in ModelPriceVersion, and usage rows point at the version they used.
    """

    model_name = models.CharField(max_length=100, unique=True, verbose_name=_("model name"))
    provider = models.CharField(max_length=50, verbose_name=_("provider"))
    display_name = models.CharField(max_length=100, verbose_name=_("display name"))
    model_type = models.CharField(
        max_length=50, choices=ModelType.choices, default=ModelType.CHAT, verbose_name=_("model type")
    )
    currency = models.CharField(
        max_length=3,
        default="USD",
        help_text=_("ISO 4217 code of all prices and costs of this model."),
        verbose_name=_("currency"),
    )
    price_per_call = _fee_field(verbose_name=_("price per call"))
    monthly_budget = _cost_field(
        null=True,
        blank=True,
        help_text=_("Empty means no budget for this model. Stated in the budget currency."),
        verbose_name=_("monthly budget"),
    )
    budget_currency = models.CharField(
        max_length=3,
        blank=True,
        default="",
        help_text=_(
            "ISO 4217 code the monthly budget is stated in; empty: the model's currency. It is compared with "
            "the month's spend in the reporting currency, converted at the exchange rate in force now."
        ),
        verbose_name=_("budget currency"),
    )
    enabled = models.BooleanField(default=True, verbose_name=_("enabled"))
    is_free = models.BooleanField(default=False, verbose_name=_("is free"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        db_table = "ai_model_pricing"
        ordering = ["provider", "model_name"]
        verbose_name = _("model price")
        constraints = [_prices_not_negative("ai_model_pricing_prices_not_negative", PRICE_FIELDS)]
        verbose_name_plural = _("model prices")

    def __str__(self) -> str:
        return self.display_name or self.model_name

    @property
    def monthly_budget_currency(self) -> str:
        """The currency the monthly budget is stated in: its own, else the model's."""
        return self.budget_currency or self.currency


class ModelPriceVersion(TokenPrices):
    """A price as it was in force for a model over the half-open span [effective_from, effective_to).

    Rows are never edited once usage points at them: a price change closes the
    current version and opens a new one.
    """

    pricing = models.ForeignKey(
        ModelPricing, on_delete=models.PROTECT, related_name="price_versions", verbose_name=_("pricing")
    )
    price_per_call = _fee_field(verbose_name=_("price per call"))
    currency = models.CharField(max_length=3, verbose_name=_("currency"))
    effective_from = models.DateTimeField(verbose_name=_("effective from"))
    effective_to = models.DateTimeField(
        null=True, blank=True, help_text=_("Empty: still in force."), verbose_name=_("effective to")
    )
    enabled = models.BooleanField(
        default=True,
        help_text=_("Calls at a moment of this span are priced; disabled: stored unpriced."),
        verbose_name=_("enabled"),
    )
    is_free = models.BooleanField(
        default=False, help_text=_("Calls at a moment of this span cost 0."), verbose_name=_("is free")
    )
    source = models.CharField(
        max_length=200, blank=True, help_text=_("Where the price came from."), verbose_name=_("source")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        db_table = "ai_model_price_version"
        ordering = ["pricing", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["pricing", "effective_from"], name="ai_model_price_version_unique_start"),
            models.UniqueConstraint(
                fields=["pricing"],
                condition=models.Q(effective_to__isnull=True),
                name="ai_model_price_version_one_open",
            ),
            models.CheckConstraint(
                condition=models.Q(effective_to__isnull=True) | models.Q(effective_to__gt=models.F("effective_from")),
                name="ai_model_price_version_span_positive",
            ),
            _prices_not_negative("ai_model_price_version_prices_not_negative", PRICE_FIELDS),
        ]
        verbose_name = _("model price version")
        verbose_name_plural = _("model price versions")

    def __str__(self) -> str:
        return gettext("%(model)s from %(start)s") % {
            "model": self.pricing.model_name,
            "start": f"{self.effective_from:%Y-%m-%d %H:%M}",
        }

    def price_tiers(self) -> list["ModelPriceVersionTier"]:
        """Its long-context tiers, lowest threshold first; read once (a price book sets them for a batch)."""
        tiers = self.__dict__.get("_price_tiers")
        if tiers is None:
            tiers = [] if self.pk is None else list(self.tiers.order_by("above_prompt_tokens"))
            self._price_tiers = tiers
        return tiers

    def price_tiers_set(self, tiers: list["ModelPriceVersionTier"]) -> None:
        self._price_tiers = sorted(tiers, key=lambda tier: tier.above_prompt_tokens)


class _PriceTier(TokenPrices):
    """Prices for calls whose prompt_tokens exceed above_prompt_tokens (strictly): the whole call is
    priced at the highest tier it exceeds. Input and output are required; the rest fall back within
    the tier."""

    above_prompt_tokens = models.PositiveIntegerField(
        help_text=_(
            "The tier prices calls with more prompt tokens than this (all input tokens: cache reads "
            "and writes, audio); a call of exactly this many stays below."
        ),
        verbose_name=_("above prompt tokens"),
    )

    class Meta:
        abstract = True


def _tier_constraints(table: str, parent: str) -> list:
    return [
        models.UniqueConstraint(fields=[parent, "above_prompt_tokens"], name=f"{table}_unique_threshold"),
        models.CheckConstraint(condition=models.Q(above_prompt_tokens__gt=0), name=f"{table}_threshold_positive"),
        _prices_not_negative(f"{table}_prices_not_negative", TOKEN_PRICE_FIELDS),
    ]


class ModelPriceTier(_PriceTier):
    """A long-context tier of the prices in force now (edited with the model; a change makes a version)."""

    pricing = models.ForeignKey(ModelPricing, on_delete=models.CASCADE, related_name="tiers", verbose_name=_("pricing"))

    class Meta:
        db_table = "ai_model_price_tier"
        ordering = ["pricing", "above_prompt_tokens"]
        verbose_name = _("long-context tier")
        constraints = _tier_constraints("ai_model_price_tier", "pricing")
        verbose_name_plural = _("long-context tiers")

    def __str__(self) -> str:
        return gettext("above %(tokens)s prompt tokens") % {"tokens": self.above_prompt_tokens}


class ModelPriceVersionTier(_PriceTier):
    """A tier as a price version holds it: never edited, like the version."""

    version = models.ForeignKey(
        ModelPriceVersion, on_delete=models.PROTECT, related_name="tiers", verbose_name=_("version")
    )

    class Meta:
        db_table = "ai_model_price_version_tier"
        ordering = ["version", "above_prompt_tokens"]
        verbose_name = _("long-context tier of a price version")
        constraints = _tier_constraints("ai_model_price_version_tier", "version")
        verbose_name_plural = _("long-context tiers of a price version")

    def __str__(self) -> str:
        return gettext("above %(tokens)s prompt tokens") % {"tokens": self.above_prompt_tokens}


class PatternKind(models.TextChoices):
    EXACT = "exact", _("Alias (exact name)")
    PREFIX = "prefix", _("Prefix")
    REGEX = "regex", _("Regular expression (full match)")


class ModelNamePattern(models.Model):
    """Another name a priced model's calls arrive under: an alias (exact), a prefix, or a regular
    expression (Python `re`, matching the whole name). Which model a sent name is priced as:
    pricing.matching (model_name, then alias, then the longest prefix, then a regular expression;
    two models' expressions matching is ambiguous and prices nothing). pricing.services validates
    that aliases and prefixes are unique and that expressions compile."""

    pricing = models.ForeignKey(
        ModelPricing, on_delete=models.CASCADE, related_name="name_patterns", verbose_name=_("pricing")
    )
    kind = models.CharField(max_length=10, choices=PatternKind.choices, verbose_name=_("kind"))
    pattern = models.CharField(max_length=200, verbose_name=_("pattern"))

    class Meta:
        db_table = "ai_model_name_pattern"
        ordering = ["pricing", "kind", "pattern"]
        verbose_name = _("model name pattern")
        constraints = [
            # Aliases and prefixes name one model each; expressions may repeat (ambiguity is reported).
            models.UniqueConstraint(
                fields=["kind", "pattern"],
                condition=models.Q(kind__in=["exact", "prefix"]),
                name="ai_model_name_pattern_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=["exact", "prefix", "regex"]), name="ai_model_name_pattern_kind"
            ),
            models.CheckConstraint(condition=~models.Q(pattern=""), name="ai_model_name_pattern_not_blank"),
        ]
        verbose_name_plural = _("model name patterns")

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.pattern}"


class ExchangeRate(models.Model):
    """How many units of quote_currency one unit of base_currency was worth over the half-open span
    [effective_from, effective_to). A history, like price versions: rows are never edited once
    stored; a new rate closes the pair's open one (pricing.services). Calls store their cost in the
    reporting currency at the rate in force at their timestamp, with a reference to that row."""

    base_currency = models.CharField(max_length=3, verbose_name=_("from currency"))
    quote_currency = models.CharField(max_length=3, verbose_name=_("to currency"))
    rate = models.DecimalField(
        max_digits=RATE_MAX_DIGITS,
        decimal_places=RATE_DECIMAL_PLACES,
        help_text=_("Units of the to currency per unit of the from currency."),
        verbose_name=_("rate"),
    )
    effective_from = models.DateTimeField(verbose_name=_("effective from"))
    effective_to = models.DateTimeField(
        null=True, blank=True, help_text=_("Empty: still in force."), verbose_name=_("effective to")
    )
    source = models.CharField(
        max_length=200, blank=True, help_text=_("Where the rate came from."), verbose_name=_("source")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        db_table = "ai_exchange_rate"
        ordering = ["base_currency", "quote_currency", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["base_currency", "quote_currency", "effective_from"], name="ai_exchange_rate_unique_start"
            ),
            models.UniqueConstraint(
                fields=["base_currency", "quote_currency"],
                condition=models.Q(effective_to__isnull=True),
                name="ai_exchange_rate_one_open",
            ),
            models.CheckConstraint(
                condition=models.Q(effective_to__isnull=True) | models.Q(effective_to__gt=models.F("effective_from")),
                name="ai_exchange_rate_span_positive",
            ),
            models.CheckConstraint(condition=models.Q(rate__gt=0), name="ai_exchange_rate_positive"),
            models.CheckConstraint(
                condition=~models.Q(base_currency=models.F("quote_currency")), name="ai_exchange_rate_two_currencies"
            ),
        ]
        verbose_name = _("exchange rate")
        verbose_name_plural = _("exchange rates")

    def __str__(self) -> str:
        return gettext("%(base)s→%(quote)s %(rate)s from %(start)s") % {
            "base": self.base_currency,
            "quote": self.quote_currency,
            "rate": self.rate.normalize() if self.rate is not None else "",
            "start": f"{self.effective_from:%Y-%m-%d %H:%M}",
        }


class PriceGeneration(models.Model):
    """One row whose generation the database changes with every write to a table the price book reads
    (triggers: pricing.generation); a process's cached price book is good while it is unchanged."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, verbose_name=_("id"))
    generation = models.BigIntegerField(verbose_name=_("generation"))

    class Meta:
        db_table = "ai_price_generation"
        verbose_name = _("price generation")
        verbose_name_plural = _("price generations")

    def __str__(self) -> str:
        return str(self.generation)
