"""Every token kind of its own price (cache reads and writes, audio, reasoning, image output, a fee per
call), long-context tiers (ai_model_price_tier, ai_model_price_version_tier), and prices kept as
published: 18 decimal places (numeric(30, 18)); budgets as costs, 24 places (numeric(40, 24)).

Foreign keys are deferred: rows written earlier in the same transaction leave trigger events
pending, which ALTER TABLE refuses on PostgreSQL, so they are fired first."""

import django.db.models.deletion
from django.db import migrations, models


def _constraints_checked_now(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _constraints_deferred_again(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL DEFERRED")


class Migration(migrations.Migration):
    dependencies = [
        ("pricing", "0005_model_name_patterns_and_version_flags"),
    ]

    operations = [
        migrations.RunPython(_constraints_checked_now, _constraints_deferred_again, elidable=False),
        migrations.CreateModel(
            name="ModelPriceTier",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "input_price_per_million",
                    models.DecimalField(
                        decimal_places=18, help_text="Price of one million prompt (input) tokens.", max_digits=30
                    ),
                ),
                (
                    "cached_input_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million prompt tokens read from the provider's cache; empty: the input price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "cache_write_5m_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million prompt tokens written to a 5-minute cache (or a cache write of no stated duration); empty: the input price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "cache_write_1h_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million prompt tokens written to a 1-hour cache; empty: the 5-minute write price, else the input price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "input_audio_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million audio prompt tokens; empty: the input price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "output_price_per_million",
                    models.DecimalField(
                        decimal_places=18, help_text="Price of one million completion (output) tokens.", max_digits=30
                    ),
                ),
                (
                    "reasoning_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million reasoning (thinking) output tokens; empty: the output price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "output_audio_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million audio output tokens; empty: the output price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "output_image_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million image output tokens; empty: the output price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "above_prompt_tokens",
                    models.PositiveIntegerField(
                        help_text="The tier prices calls with more prompt tokens than this (all input tokens: cache reads and writes, audio); a call of exactly this many stays below."
                    ),
                ),
            ],
            options={
                "verbose_name": "long-context tier",
                "db_table": "ai_model_price_tier",
                "ordering": ["pricing", "above_prompt_tokens"],
            },
        ),
        migrations.CreateModel(
            name="ModelPriceVersionTier",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "input_price_per_million",
                    models.DecimalField(
                        decimal_places=18, help_text="Price of one million prompt (input) tokens.", max_digits=30
                    ),
                ),
                (
                    "cached_input_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million prompt tokens read from the provider's cache; empty: the input price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "cache_write_5m_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million prompt tokens written to a 5-minute cache (or a cache write of no stated duration); empty: the input price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "cache_write_1h_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million prompt tokens written to a 1-hour cache; empty: the 5-minute write price, else the input price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "input_audio_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million audio prompt tokens; empty: the input price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "output_price_per_million",
                    models.DecimalField(
                        decimal_places=18, help_text="Price of one million completion (output) tokens.", max_digits=30
                    ),
                ),
                (
                    "reasoning_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million reasoning (thinking) output tokens; empty: the output price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "output_audio_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million audio output tokens; empty: the output price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "output_image_price_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=18,
                        help_text="Price of one million image output tokens; empty: the output price.",
                        max_digits=30,
                        null=True,
                    ),
                ),
                (
                    "above_prompt_tokens",
                    models.PositiveIntegerField(
                        help_text="The tier prices calls with more prompt tokens than this (all input tokens: cache reads and writes, audio); a call of exactly this many stays below."
                    ),
                ),
            ],
            options={
                "verbose_name": "long-context tier of a price version",
                "db_table": "ai_model_price_version_tier",
                "ordering": ["version", "above_prompt_tokens"],
            },
        ),
        migrations.RemoveConstraint(
            model_name="modelpricing",
            name="ai_model_pricing_prices_not_negative",
        ),
        migrations.AddField(
            model_name="modelpriceversion",
            name="cache_write_1h_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million prompt tokens written to a 1-hour cache; empty: the 5-minute write price, else the input price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpriceversion",
            name="cache_write_5m_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million prompt tokens written to a 5-minute cache (or a cache write of no stated duration); empty: the input price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpriceversion",
            name="input_audio_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million audio prompt tokens; empty: the input price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpriceversion",
            name="output_audio_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million audio output tokens; empty: the output price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpriceversion",
            name="output_image_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million image output tokens; empty: the output price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpriceversion",
            name="price_per_call",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="A fixed fee per successful call, in the model's currency (not per million); empty: none.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpriceversion",
            name="reasoning_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million reasoning (thinking) output tokens; empty: the output price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpricing",
            name="cache_write_1h_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million prompt tokens written to a 1-hour cache; empty: the 5-minute write price, else the input price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpricing",
            name="cache_write_5m_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million prompt tokens written to a 5-minute cache (or a cache write of no stated duration); empty: the input price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpricing",
            name="input_audio_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million audio prompt tokens; empty: the input price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpricing",
            name="output_audio_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million audio output tokens; empty: the output price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpricing",
            name="output_image_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million image output tokens; empty: the output price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpricing",
            name="price_per_call",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="A fixed fee per successful call, in the model's currency (not per million); empty: none.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelpricing",
            name="reasoning_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million reasoning (thinking) output tokens; empty: the output price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="modelpriceversion",
            name="cached_input_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million prompt tokens read from the provider's cache; empty: the input price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="modelpriceversion",
            name="input_price_per_million",
            field=models.DecimalField(
                decimal_places=18, help_text="Price of one million prompt (input) tokens.", max_digits=30
            ),
        ),
        migrations.AlterField(
            model_name="modelpriceversion",
            name="output_price_per_million",
            field=models.DecimalField(
                decimal_places=18, help_text="Price of one million completion (output) tokens.", max_digits=30
            ),
        ),
        migrations.AlterField(
            model_name="modelpricing",
            name="cached_input_price_per_million",
            field=models.DecimalField(
                blank=True,
                decimal_places=18,
                help_text="Price of one million prompt tokens read from the provider's cache; empty: the input price.",
                max_digits=30,
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="modelpricing",
            name="input_price_per_million",
            field=models.DecimalField(
                decimal_places=18, help_text="Price of one million prompt (input) tokens.", max_digits=30
            ),
        ),
        migrations.AlterField(
            model_name="modelpricing",
            name="monthly_budget",
            field=models.DecimalField(
                blank=True,
                decimal_places=24,
                help_text="Empty means no budget for this model.",
                max_digits=40,
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="modelpricing",
            name="output_price_per_million",
            field=models.DecimalField(
                decimal_places=18, help_text="Price of one million completion (output) tokens.", max_digits=30
            ),
        ),
        migrations.AddConstraint(
            model_name="modelpriceversion",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("input_price_per_million__gte", 0),
                    models.Q(
                        ("cached_input_price_per_million__isnull", True),
                        ("cached_input_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("cache_write_5m_price_per_million__isnull", True),
                        ("cache_write_5m_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("cache_write_1h_price_per_million__isnull", True),
                        ("cache_write_1h_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("input_audio_price_per_million__isnull", True),
                        ("input_audio_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    ("output_price_per_million__gte", 0),
                    models.Q(
                        ("reasoning_price_per_million__isnull", True),
                        ("reasoning_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("output_audio_price_per_million__isnull", True),
                        ("output_audio_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("output_image_price_per_million__isnull", True),
                        ("output_image_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(("price_per_call__isnull", True), ("price_per_call__gte", 0), _connector="OR"),
                ),
                name="ai_model_price_version_prices_not_negative",
            ),
        ),
        migrations.AddConstraint(
            model_name="modelpricing",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("input_price_per_million__gte", 0),
                    models.Q(
                        ("cached_input_price_per_million__isnull", True),
                        ("cached_input_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("cache_write_5m_price_per_million__isnull", True),
                        ("cache_write_5m_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("cache_write_1h_price_per_million__isnull", True),
                        ("cache_write_1h_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("input_audio_price_per_million__isnull", True),
                        ("input_audio_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    ("output_price_per_million__gte", 0),
                    models.Q(
                        ("reasoning_price_per_million__isnull", True),
                        ("reasoning_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("output_audio_price_per_million__isnull", True),
                        ("output_audio_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("output_image_price_per_million__isnull", True),
                        ("output_image_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(("price_per_call__isnull", True), ("price_per_call__gte", 0), _connector="OR"),
                ),
                name="ai_model_pricing_prices_not_negative",
            ),
        ),
        migrations.AddField(
            model_name="modelpricetier",
            name="pricing",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="tiers", to="pricing.modelpricing"
            ),
        ),
        migrations.AddField(
            model_name="modelpriceversiontier",
            name="version",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="tiers", to="pricing.modelpriceversion"
            ),
        ),
        migrations.AddConstraint(
            model_name="modelpricetier",
            constraint=models.UniqueConstraint(
                fields=("pricing", "above_prompt_tokens"), name="ai_model_price_tier_unique_threshold"
            ),
        ),
        migrations.AddConstraint(
            model_name="modelpricetier",
            constraint=models.CheckConstraint(
                condition=models.Q(("above_prompt_tokens__gt", 0)), name="ai_model_price_tier_threshold_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="modelpricetier",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("input_price_per_million__gte", 0),
                    models.Q(
                        ("cached_input_price_per_million__isnull", True),
                        ("cached_input_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("cache_write_5m_price_per_million__isnull", True),
                        ("cache_write_5m_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("cache_write_1h_price_per_million__isnull", True),
                        ("cache_write_1h_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("input_audio_price_per_million__isnull", True),
                        ("input_audio_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    ("output_price_per_million__gte", 0),
                    models.Q(
                        ("reasoning_price_per_million__isnull", True),
                        ("reasoning_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("output_audio_price_per_million__isnull", True),
                        ("output_audio_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("output_image_price_per_million__isnull", True),
                        ("output_image_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                ),
                name="ai_model_price_tier_prices_not_negative",
            ),
        ),
        migrations.AddConstraint(
            model_name="modelpriceversiontier",
            constraint=models.UniqueConstraint(
                fields=("version", "above_prompt_tokens"), name="ai_model_price_version_tier_unique_threshold"
            ),
        ),
        migrations.AddConstraint(
            model_name="modelpriceversiontier",
            constraint=models.CheckConstraint(
                condition=models.Q(("above_prompt_tokens__gt", 0)),
                name="ai_model_price_version_tier_threshold_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="modelpriceversiontier",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("input_price_per_million__gte", 0),
                    models.Q(
                        ("cached_input_price_per_million__isnull", True),
                        ("cached_input_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("cache_write_5m_price_per_million__isnull", True),
                        ("cache_write_5m_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("cache_write_1h_price_per_million__isnull", True),
                        ("cache_write_1h_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("input_audio_price_per_million__isnull", True),
                        ("input_audio_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    ("output_price_per_million__gte", 0),
                    models.Q(
                        ("reasoning_price_per_million__isnull", True),
                        ("reasoning_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("output_audio_price_per_million__isnull", True),
                        ("output_audio_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("output_image_price_per_million__isnull", True),
                        ("output_image_price_per_million__gte", 0),
                        _connector="OR",
                    ),
                ),
                name="ai_model_price_version_tier_prices_not_negative",
            ),
        ),
        migrations.RunPython(_constraints_deferred_again, _constraints_checked_now, elidable=False),
    ]
