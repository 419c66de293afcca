"""Issue 16: the calls stored before conversion existed get their reporting-currency figures, and the
log's three conversion columns are held consistent by a CHECK.

A stored call's cost is in its model's currency (ai_model_pricing.currency; AICOST_CURRENCY for a
model with no pricing row, as ingestion priced it). Calls whose currency is the reporting currency
(AICOST_REPORTING_CURRENCY when this runs) get reporting_cost = cost; other priced calls become
unconverted, for `manage.py usage_convert` to convert once their exchange rates exist. The rollups
get the same figures: per-model rows from their model's currency, the all-models rows from the
per-model rows of their bucket (written on one row of each bucket: a reader sums every row of a
bucket, compacted or delta). Months that retention dropped from the log keep their rollups, and are
treated alike. On a large log this rewrites every row once: run it in a maintenance window.

Frozen: no project code is imported; the tables and columns below are what this migration means."""

from django.conf import settings
from django.db import migrations, models

LOG = "ai_model_usage_log"
PRICING = "ai_model_pricing"
MODEL_TABLES = (("ai_usage_rollup_1h", "bucket", True), ("ai_usage_rollup_daily", "day", False))
TOTAL_TABLES = (
    ("ai_usage_rollup_1h_total", "ai_usage_rollup_1h", "bucket", True),
    ("ai_usage_rollup_daily_total", "ai_usage_rollup_daily", "day", False),
)
SUFFIXES_WITH_PREFIXES = ("", "_15m", "_30m", "_45m")


def _currency_of(table_alias: str) -> str:
    return f"coalesce((SELECT p.currency FROM {PRICING} p WHERE p.model_name = {table_alias}.model_name), %s)"


def reporting_costs_fill(apps, schema_editor):
    reporting, default = settings.AICOST_REPORTING_CURRENCY, settings.AICOST_CURRENCY
    execute = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        execute("SET CONSTRAINTS ALL IMMEDIATE")
    execute(
        f"UPDATE {LOG} SET reporting_cost = cost WHERE cost IS NOT NULL AND {_currency_of(LOG)} = %s",
        [default, reporting],
    )
    execute(f"UPDATE {LOG} SET unconverted = true WHERE cost IS NOT NULL AND reporting_cost IS NULL")
    for table, _key, prefixes in MODEL_TABLES:
        suffixes = SUFFIXES_WITH_PREFIXES if prefixes else ("",)
        same = f"{_currency_of(table)} = %s"
        assignments = ", ".join(
            f"reporting_cost{s} = CASE WHEN {same} THEN cost{s} ELSE 0 END, "
            f"unconverted_calls{s} = CASE WHEN {same} THEN 0 ELSE calls{s} - unpriced_calls{s} END"
            for s in suffixes
        )
        execute(f"UPDATE {table} SET {assignments}", [default, reporting] * 2 * len(suffixes))
    for table, model_table, key, prefixes in TOTAL_TABLES:
        suffixes = SUFFIXES_WITH_PREFIXES if prefixes else ("",)
        columns = [f"{name}{s}" for s in suffixes for name in ("reporting_cost", "unconverted_calls")]
        execute(f"UPDATE {table} SET " + ", ".join(f"{column} = 0" for column in columns))
        sums = ", ".join(f"sum({column}) AS {column}" for column in columns)
        assignments = ", ".join(f"{column} = s.{column}" for column in columns)
        execute(
            f"UPDATE {table} SET {assignments} "
            f"FROM (SELECT {key} AS k, {sums} FROM {model_table} GROUP BY {key}) AS s "
            f"WHERE {table}.{key} = s.k AND {table}.id = (SELECT min(t.id) FROM {table} t WHERE t.{key} = s.k)"
        )
    if schema_editor.connection.vendor == "postgresql":  # The updates' deferred checks, before the ALTERs.
        execute("SET CONSTRAINTS ALL IMMEDIATE")


def foreign_key_checks_now(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def reporting_costs_clear(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    schema_editor.execute(f"UPDATE {LOG} SET reporting_cost = NULL, exchange_rate_id = NULL, unconverted = false")


class Migration(migrations.Migration):
    dependencies = [
        ("pricing", "0008_exchange_rates"),
        ("usage", "0017_reporting_currency_costs"),
    ]

    operations = [
        migrations.RunPython(reporting_costs_fill, reporting_costs_clear, elidable=True),
        migrations.AddConstraint(
            model_name="usagelog",
            constraint=models.CheckConstraint(
                condition=models.Q(cost__isnull=True, reporting_cost__isnull=True, unconverted=False)
                | models.Q(cost__isnull=False, reporting_cost__isnull=False, unconverted=False)
                | models.Q(cost__isnull=False, reporting_cost__isnull=True, unconverted=True),
                name="ai_model_usage_log_conversion_consistent",
            ),
        ),
        migrations.AddConstraint(
            model_name="usagelog",
            constraint=models.CheckConstraint(
                condition=models.Q(reporting_cost__isnull=True) | models.Q(reporting_cost__gte=0),
                name="ai_model_usage_log_reporting_cost_check",
            ),
        ),
        # Backwards the constraints are dropped first: pending deferred checks run before those ALTERs.
        migrations.RunPython(migrations.RunPython.noop, foreign_key_checks_now, elidable=True),
    ]
