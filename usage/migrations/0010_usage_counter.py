# The per-model running counters move from pricing's ai_model_pricing to usage's own table, so
# the app that adds to them owns them. Existing counters are copied; models called without a price
# (they had no counter) start from the calls their rollups hold (unpriced calls cost nothing).
# Frozen: this migration uses the historical models only.

import django.utils.timezone
from django.db import migrations, models
from django.db.models import Sum

QUARTERS = (0, 1, 2, 3)


def _rolled_up_calls(apps) -> dict[str, int]:
    daily = apps.get_model("usage", "UsageRollupDaily")
    pending = apps.get_model("usage", "UsageRollupPending")
    calls = {row["model_name"]: row["n"] for row in daily.objects.values("model_name").annotate(n=Sum("calls"))}
    pending_sums = {f"q{quarter}": Sum(f"calls_q{quarter}") for quarter in QUARTERS}
    for row in pending.objects.values("model_name").annotate(**pending_sums):
        calls[row["model_name"]] = calls.get(row["model_name"], 0) + sum(row[f"q{q}"] or 0 for q in QUARTERS)
    return calls


def counters_copy(apps, schema_editor):
    pricing_model = apps.get_model("pricing", "ModelPricing")
    counter_model = apps.get_model("usage", "UsageCounter")
    now = django.utils.timezone.now()
    counters = {
        pricing.model_name: counter_model(
            model_name=pricing.model_name,
            total_calls=pricing.total_calls,
            total_cost=pricing.total_cost,
            current_month=pricing.current_month,
            current_month_cost=pricing.current_month_cost,
            updated_at=now,
        )
        for pricing in pricing_model.objects.all()
    }
    for model_name, calls in _rolled_up_calls(apps).items():
        if model_name not in counters:
            counters[model_name] = counter_model(model_name=model_name, total_calls=calls, updated_at=now)
    counter_model.objects.bulk_create(counters.values())


def counters_copy_back(apps, schema_editor):
    pricing_model = apps.get_model("pricing", "ModelPricing")
    for counter in apps.get_model("usage", "UsageCounter").objects.all():
        pricing_model.objects.filter(model_name=counter.model_name).update(
            total_calls=counter.total_calls,
            total_cost=counter.total_cost,
            current_month=counter.current_month,
            current_month_cost=counter.current_month_cost,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("pricing", "0002_seed_model_prices"),
        ("usage", "0009_usage_log_checks"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageCounter",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("model_name", models.CharField(max_length=100, unique=True)),
                ("total_calls", models.BigIntegerField(default=0)),
                ("total_cost", models.DecimalField(decimal_places=8, default=0, max_digits=20)),
                (
                    "current_month",
                    models.DateField(
                        blank=True, help_text="First day of the month current_month_cost counts.", null=True
                    ),
                ),
                ("current_month_cost", models.DecimalField(decimal_places=8, default=0, max_digits=20)),
                ("updated_at", models.DateTimeField()),
            ],
            options={
                "db_table": "ai_usage_counter",
                "ordering": ["model_name"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(total_calls__gte=0, total_cost__gte=0, current_month_cost__gte=0),
                        name="ai_usage_counter_not_negative",
                    )
                ],
            },
        ),
        migrations.RunPython(counters_copy, counters_copy_back),
    ]
