from django.db import models

from core.money import (
    COST_DECIMAL_PLACES,
    COST_MAX_DIGITS,
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
)


class ModelType(models.TextChoices):
    CHAT = "chat", "Chat"
    REASONING = "reasoning", "Reasoning"
    EMBEDDING = "embedding", "Embedding"
    IMAGE = "image", "Image"


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


def _optional_price(help_text: str) -> models.DecimalField:
    return _price_field(null=True, blank=True, help_text=help_text)


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

    input_price_per_million = _price_field(help_text="Price of one million prompt (input) tokens.")
    cached_input_price_per_million = _optional_price(
        "Price of one million prompt tokens read from the provider's cache; empty: the input price."
    )
    cache_write_5m_price_per_million = _optional_price(
        "Price of one million prompt tokens written to a 5-minute cache (or a cache write of no stated "
        "duration); empty: the input price."
    )
    cache_write_1h_price_per_million = _optional_price(
        "Price of one million prompt tokens written to a 1-hour cache; empty: the 5-minute write price, "
        "else the input price."
    )
    input_audio_price_per_million = _optional_price("Price of one million audio prompt tokens; empty: the input price.")
    output_price_per_million = _price_field(help_text="Price of one million completion (output) tokens.")
    reasoning_price_per_million = _optional_price(
        "Price of one million reasoning (thinking) output tokens; empty: the output price."
    )
    output_audio_price_per_million = _optional_price(
        "Price of one million audio output tokens; empty: the output price."
    )
    output_image_price_per_million = _optional_price(
        "Price of one million image output tokens; empty: the output price."
    )

    class Meta:
        abstract = True


def _fee_field() -> models.DecimalField:
    return _price_field(
        null=True,
        blank=True,
        help_text="A fixed fee per successful call, in the model's currency (not per million); empty: none.",
    )


class ModelPricing(TokenPrices):
    """One AI model a team calls, its current list price and budget (its running counters are
    usage's: usage.models.UsageCounter).

    The prices here are the ones in force now; every price that was ever in force
    is kept in ModelPriceVersion, and usage rows point at the version they used.
    """

    model_name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=50)
    display_name = models.CharField(max_length=100)
    model_type = models.CharField(max_length=50, choices=ModelType.choices, default=ModelType.CHAT)
    currency = models.CharField(
        max_length=3, default="USD", help_text="ISO 4217 code of all prices and costs of this model."
    )
    price_per_call = _fee_field()
    monthly_budget = _cost_field(null=True, blank=True, help_text="Empty means no budget for this model.")
    enabled = models.BooleanField(default=True)
    is_free = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "ai_model_pricing"
        ordering = ["provider", "model_name"]
        verbose_name = "model price"
        constraints = [_prices_not_negative("ai_model_pricing_prices_not_negative", PRICE_FIELDS)]

    def __str__(self) -> str:
        return self.display_name or self.model_name


class ModelPriceVersion(TokenPrices):
    """A price as it was in force for a model over the half-open span [effective_from, effective_to).

    Rows are never edited once usage points at them: a price change closes the
    current version and opens a new one.
    """

    pricing = models.ForeignKey(ModelPricing, on_delete=models.PROTECT, related_name="price_versions")
    price_per_call = _fee_field()
    currency = models.CharField(max_length=3)
    effective_from = models.DateTimeField()
    effective_to = models.DateTimeField(null=True, blank=True, help_text="Empty: still in force.")
    enabled = models.BooleanField(
        default=True, help_text="Calls at a moment of this span are priced; disabled: stored unpriced."
    )
    is_free = models.BooleanField(default=False, help_text="Calls at a moment of this span cost 0.")
    source = models.CharField(max_length=200, blank=True, help_text="Where the price came from.")
    created_at = models.DateTimeField(auto_now_add=True)

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

    def __str__(self) -> str:
        return f"{self.pricing.model_name} from {self.effective_from:%Y-%m-%d %H:%M}"

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
        help_text="The tier prices calls with more prompt tokens than this (all input tokens: cache reads "
        "and writes, audio); a call of exactly this many stays below."
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

    pricing = models.ForeignKey(ModelPricing, on_delete=models.CASCADE, related_name="tiers")

    class Meta:
        db_table = "ai_model_price_tier"
        ordering = ["pricing", "above_prompt_tokens"]
        verbose_name = "long-context tier"
        constraints = _tier_constraints("ai_model_price_tier", "pricing")

    def __str__(self) -> str:
        return f"above {self.above_prompt_tokens} prompt tokens"


class ModelPriceVersionTier(_PriceTier):
    """A tier as a price version holds it: never edited, like the version."""

    version = models.ForeignKey(ModelPriceVersion, on_delete=models.PROTECT, related_name="tiers")

    class Meta:
        db_table = "ai_model_price_version_tier"
        ordering = ["version", "above_prompt_tokens"]
        verbose_name = "long-context tier of a price version"
        constraints = _tier_constraints("ai_model_price_version_tier", "version")

    def __str__(self) -> str:
        return f"above {self.above_prompt_tokens} prompt tokens"


class PatternKind(models.TextChoices):
    EXACT = "exact", "Alias (exact name)"
    PREFIX = "prefix", "Prefix"
    REGEX = "regex", "Regular expression (full match)"


class ModelNamePattern(models.Model):
    """Another name a priced model's calls arrive under: an alias (exact), a prefix, or a regular
    expression (Python `re`, matching the whole name). Which model a sent name is priced as:
    pricing.matching (model_name, then alias, then the longest prefix, then a regular expression;
    two models' expressions matching is ambiguous and prices nothing). pricing.services validates
    that aliases and prefixes are unique and that expressions compile."""

    pricing = models.ForeignKey(ModelPricing, on_delete=models.CASCADE, related_name="name_patterns")
    kind = models.CharField(max_length=10, choices=PatternKind.choices)
    pattern = models.CharField(max_length=200)

    class Meta:
        db_table = "ai_model_name_pattern"
        ordering = ["pricing", "kind", "pattern"]
        verbose_name = "model name pattern"
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

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.pattern}"
