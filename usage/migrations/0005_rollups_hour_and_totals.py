"""Hour rollups per model, and all-models rollups per 15 minutes, hour and day, backfilled from the
15-minute rollups (which hold all the usage logged so far)."""

from django.db import migrations, models

COLUMNS = (
    "calls, successful_calls, unpriced_calls, prompt_tokens, completion_tokens, cached_tokens, "
    "reasoning_tokens, cost, response_time_sum, response_time_count"
)
SUMS = ", ".join(f"sum({column})" for column in COLUMNS.split(", "))
BUCKETS = {
    "postgresql": {
        "hour": "date_bin('1 hour', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
        "day": "(bucket AT TIME ZONE 'UTC')::date",
    },
    # SQLite stores UTC text 'YYYY-MM-DD HH:MM:SS'.
    "sqlite": {"hour": "strftime('%Y-%m-%d %H:00:00', bucket)", "day": "date(bucket)"},
}


def backfill(apps, schema_editor):
    hour = BUCKETS[schema_editor.connection.vendor]["hour"]
    day = BUCKETS[schema_editor.connection.vendor]["day"]
    for table, key_column, key, per_model in (
        ("ai_usage_rollup_1h", "bucket", hour, True),
        ("ai_usage_rollup_15m_total", "bucket", "bucket", False),
        ("ai_usage_rollup_1h_total", "bucket", hour, False),
        ("ai_usage_rollup_daily_total", "day", day, False),
    ):
        keys, group = (f"{key_column}, model_name", "1, 2") if per_model else (key_column, "1")
        source_keys = f"{key}, model_name" if per_model else key
        schema_editor.execute(
            f"INSERT INTO {table} ({keys}, {COLUMNS}) "
            f"SELECT {source_keys}, {SUMS} FROM ai_usage_rollup_15m GROUP BY {group}"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0004_usage_log_partitioned_retired_months"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageRollupDailyTotal",
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
                ("day", models.DateField(help_text="UTC calendar day.")),
            ],
            options={
                "db_table": "ai_usage_rollup_daily_total",
                "constraints": [models.UniqueConstraint(fields=("day",), name="ai_usage_rollup_daily_total_key")],
            },
        ),
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
        migrations.CreateModel(
            name="UsageRollupQuarterHourTotal",
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
                ("bucket", models.DateTimeField(help_text="Start of the 15-minute bucket.")),
            ],
            options={
                "db_table": "ai_usage_rollup_15m_total",
                "constraints": [models.UniqueConstraint(fields=("bucket",), name="ai_usage_rollup_15m_total_key")],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
