"""Exact money: every cost column keeps 24 decimal places (numeric(40, 24)), so a call's cost is
stored as price x tokens to the last digit. Existing values keep their value (8 places widen to 24).

On PostgreSQL the log's foreign key to the price versions is deferred: rows written earlier in the
same transaction leave trigger events pending, which ALTER TABLE refuses. They are fired first (and deferred again at the end)."""

from django.db import migrations, models


def _constraints_checked_now(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _constraints_deferred_again(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL DEFERRED")


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0013_usage_log_sent_model_name"),
    ]

    operations = [
        migrations.RunPython(_constraints_checked_now, _constraints_deferred_again, elidable=False),
        migrations.AlterField(
            model_name="usagecounter",
            name="current_month_cost",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagecounter",
            name="total_cost",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagelog",
            name="cost",
            field=models.DecimalField(
                blank=True,
                decimal_places=24,
                help_text="Empty when the call could not be priced.",
                max_digits=40,
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="usageloggap",
            name="cost",
            field=models.DecimalField(decimal_places=24, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usageretiredmonth",
            name="cost",
            field=models.DecimalField(decimal_places=24, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagerollupdaily",
            name="cost",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagerollupdailytotal",
            name="cost",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagerolluphour",
            name="cost",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagerolluphour",
            name="cost_15m",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagerolluphour",
            name="cost_30m",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagerolluphour",
            name="cost_45m",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagerolluphourtotal",
            name="cost",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagerolluphourtotal",
            name="cost_15m",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagerolluphourtotal",
            name="cost_30m",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.AlterField(
            model_name="usagerolluphourtotal",
            name="cost_45m",
            field=models.DecimalField(decimal_places=24, default=0, max_digits=40),
        ),
        migrations.RunPython(_constraints_deferred_again, _constraints_checked_now, elidable=False),
    ]
