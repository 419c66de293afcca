"""The token kinds with a price of their own (issue 15): cache writes (5-minute, 1-hour), input
audio, output audio and output images, each a column of the usage log, never negative, and within
its whole (the prompt's parts within prompt_tokens, the completion's within completion_tokens); and
each summed by the rollups (the hour tables with their 15/30/45-minute prefixes). Existing rows and
rollup rows get 0: nothing recorded so far carried these kinds. The log's columns keep DEFAULT 0, so
a writer that predates them (raw SQL, a restored dump) stores 0.

Frozen: no project code is imported; the columns and rules below are what this migration means."""

from django.db import migrations, models

KINDS = (
    # (column, help text on the log)
    ("cache_write_5m_tokens", "Prompt tokens written to a 5-minute cache (or a cache write without a duration)."),
    ("cache_write_1h_tokens", "Prompt tokens written to a 1-hour cache."),
    ("input_audio_tokens", "Prompt tokens that are audio."),
    ("output_audio_tokens", "Completion tokens that are audio."),
    ("output_image_tokens", "Completion tokens that are images."),
)
PROMPT_PARTS = ("cached_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "input_audio_tokens")
COMPLETION_PARTS = ("reasoning_tokens", "output_audio_tokens", "output_image_tokens")
LOG = "ai_model_usage_log"
PREFIX_MINUTES = (15, 30, 45)
HOUR_ROLLUPS = ("usagerolluphour", "usagerolluphourtotal")
DAY_ROLLUPS = ("usagerollupdaily", "usagerollupdailytotal")


def foreign_key_checks_now(apps, schema_editor):
    """PostgreSQL cannot ALTER a table with deferred foreign-key checks pending (rows written earlier
    in the same transaction, as when tests migrate): run those checks first."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _sum(columns):
    total = models.F(columns[0])
    for column in columns[1:]:
        total = total + models.F(column)
    return total


def _check(name: str, condition: models.Q) -> migrations.AddConstraint:
    return migrations.AddConstraint(
        model_name="usagelog", constraint=models.CheckConstraint(condition=condition, name=f"{LOG}_{name}")
    )


def _rollup_column(model_name: str, name: str) -> migrations.AddField:
    return migrations.AddField(model_name=model_name, name=name, field=models.BigIntegerField(default=0))


class Migration(migrations.Migration):
    dependencies = [
        ("pricing", "0004_providers_canonical"),
        ("usage", "0011_rollup_delta_rows_replace_pending"),
    ]

    operations = [
        migrations.RunPython(foreign_key_checks_now, migrations.RunPython.noop, elidable=True),
        *(
            migrations.AddField(
                model_name="usagelog",
                name=column,
                field=models.IntegerField(default=0, db_default=0, help_text=help_text),
            )
            for column, help_text in KINDS
        ),
        *(_rollup_column(model_name, column) for model_name in DAY_ROLLUPS for column, _help in KINDS),
        *(
            _rollup_column(model_name, name)
            for model_name in HOUR_ROLLUPS
            for column, _help in KINDS
            for name in (column, *(f"{column}_{minutes}m" for minutes in PREFIX_MINUTES))
        ),
        *(_check(f"{column}_check", models.Q(**{f"{column}__gte": 0})) for column, _help in KINDS),
        _check("input_parts_within_prompt", models.Q(prompt_tokens__gte=_sum(PROMPT_PARTS))),
        _check("output_parts_within_completion", models.Q(completion_tokens__gte=_sum(COMPLETION_PARTS))),
        migrations.RunPython(migrations.RunPython.noop, foreign_key_checks_now, elidable=True),
    ]
