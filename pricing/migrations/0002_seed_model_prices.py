"""Load the 9 models of the original incident's seed, at their providers' published list prices.

All prices are USD per one million tokens, standard (non-batch) tier, short-context rate.
They are in force from 2025-01-01 UTC so that history loaded later is priced; staff change
them in admin, which opens a new price version and never rewrites this one.
"""

from datetime import UTC, datetime
from decimal import Decimal

from django.db import migrations

IN_FORCE_FROM = datetime(2025, 1, 1, tzinfo=UTC)

# model_name, provider, display_name, model_type, input, output, cached input, source
SEED_PRICES = [
    (
        "deepseek-chat",
        "DeepSeek",
        "DeepSeek-V3.2 (chat)",
        "chat",
        "0.28",
        "0.42",
        "0.028",
        "DeepSeek API pricing page, V3.2, 2025-09-29",
    ),
    (
        "deepseek-reasoner",
        "DeepSeek",
        "DeepSeek-V3.2 (reasoner)",
        "reasoning",
        "0.28",
        "0.42",
        "0.028",
        "DeepSeek API pricing page, V3.2, 2025-09-29",
    ),
    (
        "qwen-plus",
        "Alibaba Cloud",
        "Qwen-Plus",
        "chat",
        "0.40",
        "1.20",
        None,
        "Alibaba Cloud Model Studio (international), qwen-plus, input <= 256K",
    ),
    ("gpt-4o", "OpenAI", "GPT-4o", "chat", "2.50", "10.00", "1.25", "OpenAI API pricing, gpt-4o"),
    ("gpt-4o-mini", "OpenAI", "GPT-4o mini", "chat", "0.15", "0.60", "0.075", "OpenAI API pricing, gpt-4o-mini"),
    ("gpt-4.1", "OpenAI", "GPT-4.1", "chat", "2.00", "8.00", "0.50", "OpenAI API pricing, gpt-4.1"),
    (
        "claude-sonnet-4-5",
        "Anthropic",
        "Claude Sonnet 4.5",
        "chat",
        "3.00",
        "15.00",
        "0.30",
        "Anthropic API pricing, Sonnet 4.5, prompts <= 200K, cache read",
    ),
    (
        "claude-haiku-4-5",
        "Anthropic",
        "Claude Haiku 4.5",
        "chat",
        "1.00",
        "5.00",
        "0.10",
        "Anthropic API pricing, Haiku 4.5, cache read",
    ),
    (
        "gemini-2.5-flash",
        "Google",
        "Gemini 2.5 Flash",
        "chat",
        "0.30",
        "2.50",
        "0.03",
        "Gemini API pricing, 2.5 Flash, text input, context caching",
    ),
]


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def load_prices(apps, schema_editor):
    ModelPricing = apps.get_model("pricing", "ModelPricing")
    ModelPriceVersion = apps.get_model("pricing", "ModelPriceVersion")
    for name, provider, display, model_type, price_in, price_out, price_cached, source in SEED_PRICES:
        if ModelPricing.objects.filter(model_name=name).exists():
            continue
        pricing = ModelPricing.objects.create(
            model_name=name,
            provider=provider,
            display_name=display,
            model_type=model_type,
            currency="USD",
            input_price_per_million=Decimal(price_in),
            output_price_per_million=Decimal(price_out),
            cached_input_price_per_million=_decimal(price_cached),
        )
        ModelPriceVersion.objects.create(
            pricing=pricing,
            input_price_per_million=Decimal(price_in),
            output_price_per_million=Decimal(price_out),
            cached_input_price_per_million=_decimal(price_cached),
            currency="USD",
            effective_from=IN_FORCE_FROM,
            source=source,
        )


def unload_prices(apps, schema_editor):
    ModelPricing = apps.get_model("pricing", "ModelPricing")
    ModelPriceVersion = apps.get_model("pricing", "ModelPriceVersion")
    names = [row[0] for row in SEED_PRICES]
    ModelPriceVersion.objects.filter(pricing__model_name__in=names, effective_from=IN_FORCE_FROM).delete()
    ModelPricing.objects.filter(model_name__in=names, price_versions__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("pricing", "0001_initial")]

    operations = [migrations.RunPython(load_prices, unload_prices)]
