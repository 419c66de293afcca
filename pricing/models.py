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


class ModelPricing(models.Model):
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
    input_price_per_million = _price_field(help_text="Price of one million prompt (input) tokens.")
    output_price_per_million = _price_field(help_text="Price of one million completion (output) tokens.")
    cached_input_price_per_million = _price_field(
        null=True,
        blank=True,
        help_text="Price of one million cached prompt tokens; empty means cached tokens cost the input price.",
    )
    monthly_budget = _cost_field(null=True, blank=True, help_text="Empty means no budget for this model.")
    enabled = models.BooleanField(default=True)
    is_free = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "ai_model_pricing"
        ordering = ["provider", "model_name"]
        verbose_name = "model price"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(input_price_per_million__gte=0)
                & models.Q(output_price_per_million__gte=0)
                & (
                    models.Q(cached_input_price_per_million__isnull=True)
                    | models.Q(cached_input_price_per_million__gte=0)
                ),
                name="ai_model_pricing_prices_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or self.model_name


class ModelPriceVersion(models.Model):
    """A price as it was in force for a model over the half-open span [effective_from, effective_to).

    Rows are never edited once usage points at them: a price change closes the
    current version and opens a new one.
    """

    pricing = models.ForeignKey(ModelPricing, on_delete=models.PROTECT, related_name="price_versions")
    input_price_per_million = _price_field()
    output_price_per_million = _price_field()
    cached_input_price_per_million = _price_field(null=True, blank=True)
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
        ]

    def __str__(self) -> str:
        return f"{self.pricing.model_name} from {self.effective_from:%Y-%m-%d %H:%M}"


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
