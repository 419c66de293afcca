"""is_free and enabled become part of the price history (each version holds them), and a priced model
may list other names its calls arrive under (aliases, prefixes, regular expressions).

Existing versions take their model's flags as they are now: no earlier change of them was recorded.
Frozen: historical models only."""

import django.db.models.deletion
from django.db import migrations, models


def version_flags_from_models(apps, schema_editor):
    pricing_model = apps.get_model("pricing", "ModelPricing")
    version_model = apps.get_model("pricing", "ModelPriceVersion")
    alias = schema_editor.connection.alias
    for pricing in pricing_model.objects.using(alias).exclude(enabled=True, is_free=False):
        version_model.objects.using(alias).filter(pricing_id=pricing.pk).update(
            enabled=pricing.enabled, is_free=pricing.is_free
        )


class Migration(migrations.Migration):
    dependencies = [
        ("pricing", "0004_providers_canonical"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelpriceversion",
            name="enabled",
            field=models.BooleanField(
                default=True, help_text="Calls at a moment of this span are priced; disabled: stored unpriced."
            ),
        ),
        migrations.AddField(
            model_name="modelpriceversion",
            name="is_free",
            field=models.BooleanField(default=False, help_text="Calls at a moment of this span cost 0."),
        ),
        migrations.RunPython(version_flags_from_models, migrations.RunPython.noop),
        migrations.CreateModel(
            name="ModelNamePattern",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("exact", "Alias (exact name)"),
                            ("prefix", "Prefix"),
                            ("regex", "Regular expression (full match)"),
                        ],
                        max_length=10,
                    ),
                ),
                ("pattern", models.CharField(max_length=200)),
                (
                    "pricing",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="name_patterns",
                        to="pricing.modelpricing",
                    ),
                ),
            ],
            options={
                "verbose_name": "model name pattern",
                "db_table": "ai_model_name_pattern",
                "ordering": ["pricing", "kind", "pattern"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("kind__in", ["exact", "prefix"])),
                        fields=("kind", "pattern"),
                        name="ai_model_name_pattern_unique",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("kind__in", ["exact", "prefix", "regex"])),
                        name="ai_model_name_pattern_kind",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("pattern", ""), _negated=True), name="ai_model_name_pattern_not_blank"
                    ),
                ],
            },
        ),
    ]
