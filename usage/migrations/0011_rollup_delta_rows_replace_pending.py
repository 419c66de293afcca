# Rollup rows become compacted (at most one per key) or deltas (any number per key, appended by
# PostgreSQL batches and compacted later), so readers sum rows and have nothing else to add: the
# pending table goes. Existing rollup rows are compacted; every pending row's sums are folded into
# them before the table is dropped. The reverse compacts any delta rows first (one row per key
# again) and recreates the pending table empty.
# Frozen: the column lists and SQL below are this migration's own (it imports no project code).

from django.db import migrations, models

SUMS = (
    "calls",
    "successful_calls",
    "unpriced_calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost",
    "response_time_sum",
    "response_time_count",
)
PREFIX_MINUTES = (15, 30, 45)
HOUR_SUMS = SUMS + tuple(f"{name}_{minutes}m" for minutes in PREFIX_MINUTES for name in SUMS)

# (table, model, key columns, sum columns, key expression of a pending row per vendor)
_HOUR = {"postgresql": "bucket", "sqlite": "bucket"}
_DAY = {"postgresql": "(bucket AT TIME ZONE 'UTC')::date", "sqlite": "date(bucket)"}
TABLES = (
    ("ai_usage_rollup_1h", "usagerolluphour", ("bucket", "model_name"), HOUR_SUMS, _HOUR),
    ("ai_usage_rollup_1h_total", "usagerolluphourtotal", ("bucket",), HOUR_SUMS, _HOUR),
    ("ai_usage_rollup_daily", "usagerollupdaily", ("day", "model_name"), SUMS, _DAY),
    ("ai_usage_rollup_daily_total", "usagerollupdailytotal", ("day",), SUMS, _DAY),
)
OLD_KEYS = {
    "usagerolluphour": "ai_usage_rollup_1h_key",
    "usagerolluphourtotal": "ai_usage_rollup_1h_total_key",
    "usagerollupdaily": "ai_usage_rollup_daily_key",
    "usagerollupdailytotal": "ai_usage_rollup_daily_total_key",
}
INDEX_PREFIXES = {
    "usagerolluphour": "ai_rollup_1h",
    "usagerolluphourtotal": "ai_rollup_1h_total",
    "usagerollupdaily": "ai_rollup_daily",
    "usagerollupdailytotal": "ai_rollup_daily_total",
}


def _pending_sum(column: str) -> str:
    """A pending row's sum of `column` (a rollup column) from its quarter columns: the whole hour,
    or the first 15/30/45 minutes (the quarters before the 1st/2nd/3rd)."""
    for minutes in PREFIX_MINUTES:
        suffix = f"_{minutes}m"
        if column.endswith(suffix):
            name = column[: -len(suffix)]
            return " + ".join(f"{name}_q{quarter}" for quarter in range(minutes // 15))
    return " + ".join(f"{column}_q{quarter}" for quarter in range(4))


def _upsert_sql(table: str, keys: tuple, sums: tuple, select: str) -> str:
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    # WHERE true: SQLite's parser needs it between SELECT and ON CONFLICT.
    return (
        f"INSERT INTO {table} ({', '.join([*keys, 'compacted', *sums])}) {select} "
        f"ON CONFLICT ({', '.join(keys)}) WHERE compacted DO UPDATE SET {updates}"
    )


def pending_fold(apps, schema_editor):
    """Add every pending row's sums to the compacted rollup rows of its hour and day."""
    vendor = schema_editor.connection.vendor
    for table, _model, keys, sums, key_of_pending in TABLES:
        key_values = ", ".join([key_of_pending[vendor], *keys[1:]])
        order = ", ".join(str(n) for n in range(1, len(keys) + 1))
        select = (
            f"SELECT {key_values}, true, {', '.join(f'sum({_pending_sum(c)})' for c in sums)} "
            f"FROM ai_usage_rollup_pending WHERE true GROUP BY {order} ORDER BY {order}"
        )
        schema_editor.execute(_upsert_sql(table, keys, sums, select))
    schema_editor.execute("DELETE FROM ai_usage_rollup_pending")


def deltas_compact(apps, schema_editor):
    """Reverse: fold every delta row into its key's compacted row, so one row per key is left."""
    for table, _model, keys, sums, _key_of_pending in TABLES:
        order = ", ".join(str(n) for n in range(1, len(keys) + 1))
        select = (
            f"SELECT {', '.join(keys)}, true, {', '.join(f'sum({c})' for c in sums)} "
            f"FROM {table} WHERE NOT compacted GROUP BY {order} ORDER BY {order}"
        )
        schema_editor.execute(_upsert_sql(table, keys, sums, select))
        schema_editor.execute(f"DELETE FROM {table} WHERE NOT compacted")


def _operations() -> list:
    added = [
        migrations.AddField(model_name=model, name="compacted", field=models.BooleanField(default=False))
        for _table, model, _keys, _sums, _pending in TABLES
    ]
    # Every row there is today is the one row of its key.
    compacted = [
        migrations.RunSQL(f"UPDATE {table} SET compacted = true", migrations.RunSQL.noop)
        for table, _model, _keys, _sums, _pending in TABLES
    ]
    swapped = []
    for table, model, keys, _sums, _pending in TABLES:
        prefix = INDEX_PREFIXES[model]
        swapped += [
            migrations.AddConstraint(
                model_name=model,
                constraint=models.UniqueConstraint(
                    condition=models.Q(("compacted", True)), fields=keys, name=f"{table}_compacted_key"
                ),
            ),
            migrations.AddIndex(model_name=model, index=models.Index(fields=list(keys), name=f"{prefix}_range")),
            migrations.AddIndex(
                model_name=model,
                index=models.Index(
                    condition=models.Q(("compacted", False)), fields=list(keys), name=f"{prefix}_deltas"
                ),
            ),
            migrations.RemoveConstraint(model_name=model, name=OLD_KEYS[model]),
        ]
    return [
        *added,
        *compacted,
        *swapped,
        migrations.RunPython(pending_fold, deltas_compact),
        # Reversed, this recreates the table as the migration state before it holds it (0007's).
        migrations.DeleteModel(name="UsageRollupPending"),
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0010_usage_counter"),
    ]

    operations = _operations()
