"""Exact money: the alerts' and the global budget's amounts keep 24 decimal places (numeric(40, 24)).

Foreign keys are deferred: rows written earlier in the same transaction leave trigger events
pending, which ALTER TABLE refuses on PostgreSQL, so they are fired first."""

from django.db import migrations, models


def _constraints_checked_now(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _constraints_deferred_again(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL DEFERRED")


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0003_global_budget_currency_no_callable_default"),
    ]

    operations = [
        migrations.RunPython(_constraints_checked_now, _constraints_deferred_again, elidable=False),
        migrations.AlterField(
            model_name="budgetalert",
            name="budget_limit",
            field=models.DecimalField(
                blank=True,
                decimal_places=24,
                help_text="The budget; for spend spikes the trailing daily average; empty for error-rate alerts.",
                max_digits=40,
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="budgetalert",
            name="current_cost",
            field=models.DecimalField(decimal_places=24, max_digits=40),
        ),
        migrations.AlterField(
            model_name="globalbudget",
            name="monthly_budget",
            field=models.DecimalField(
                blank=True, decimal_places=24, help_text="Empty means no global budget.", max_digits=40, null=True
            ),
        ),
        migrations.RunPython(_constraints_deferred_again, _constraints_checked_now, elidable=False),
    ]
