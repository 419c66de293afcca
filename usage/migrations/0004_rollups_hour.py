"""Hour rollups, per model and for all models together, backfilled from the 15-minute rollups."""

from django.db import migrations, models

SUMS = (
    "sum(calls), sum(successful_calls), sum(unpriced_calls), sum(prompt_tokens), sum(completion_tokens), "
    "sum(cached_tokens), sum(reasoning_tokens), sum(cost), sum(response_time_sum), sum(response_time_count)"
)
COLUMNS = (
    "calls, successful_calls, unpriced_calls, prompt_tokens, completion_tokens, cached_tokens, "
    "reasoning_tokens, cost, response_time_sum, response_time_count"
)
HOUR = {
    "postgresql": "date_bin('1 hour', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    # SQLite stores UTC text 'YYYY-MM-DD HH:MM:SS'.
    "sqlite": "strftime('%Y-%m-%d %H:00:00', bucket)",
}


def backfill_hours(apps, schema_editor):
    """Sum the 15-minute rollups (they hold all the usage logged so far) into the hour rollups."""
    hour = HOUR[schema_editor.connection.vendor]
    schema_editor.execute(
        f"INSERT INTO ai_usage_rollup_1h (bucket, model_name, {COLUMNS}) "
        f"SELECT {hour}, model_name, {SUMS} FROM ai_usage_rollup_15m GROUP BY 1, 2"
    )
    schema_editor.execute(
        f"INSERT INTO ai_usage_rollup_1h_total (bucket, {COLUMNS}) "
        f"SELECT {hour}, {SUMS} FROM ai_usage_rollup_15m GROUP BY 1"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0003_rollups_quarter_hour_and_daily"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageRollupHour",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("calls", models.BigIntegerField(default=0)),
                ("successful_calls", models.BigIntegerField(default=0)),
                ("unpriced_calls", models.BigIntegerField(default=0)),
                ("prompt_tokens", models.BigIntegerField(default=0)),
                ("completion_tokens", models.BigIntegerField(default=0)),
                ("cached_tokens", models.BigIntegerField(default=0)),
                ("reasoning_tokens", models.BigIntegerField(default=0)),
                ("cost", models.DecimalField(decimal_places=8, default=0, max_digits=20)),
                ("response_time_sum", models.FloatField(default=0)),
                ("response_time_count", models.BigIntegerField(default=0)),
                ("model_name", models.CharField(max_length=100)),
                ("bucket", models.DateTimeField(help_text="Start of the hour (UTC).")),
            ],
            options={
                "db_table": "ai_usage_rollup_1h",
                "constraints": [
                    models.UniqueConstraint(fields=("bucket", "model_name"), name="ai_usage_rollup_1h_key")
                ],
            },
        ),
        migrations.CreateModel(
            name="UsageRollupHourTotal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("calls", models.BigIntegerField(default=0)),
                ("successful_calls", models.BigIntegerField(default=0)),
                ("unpriced_calls", models.BigIntegerField(default=0)),
                ("prompt_tokens", models.BigIntegerField(default=0)),
                ("completion_tokens", models.BigIntegerField(default=0)),
                ("cached_tokens", models.BigIntegerField(default=0)),
                ("reasoning_tokens", models.BigIntegerField(default=0)),
                ("cost", models.DecimalField(decimal_places=8, default=0, max_digits=20)),
                ("response_time_sum", models.FloatField(default=0)),
                ("response_time_count", models.BigIntegerField(default=0)),
                ("bucket", models.DateTimeField(help_text="Start of the hour (UTC).")),
            ],
            options={
                "db_table": "ai_usage_rollup_1h_total",
                "constraints": [models.UniqueConstraint(fields=("bucket",), name="ai_usage_rollup_1h_total_key")],
            },
        ),
        migrations.RunPython(backfill_hours, migrations.RunPython.noop),
    ]
