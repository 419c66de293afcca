"""The usage log's rules as CHECK constraints: tokens and cost never negative, cached within prompt
and reasoning within completion tokens. The tokens' unnamed field checks (PositiveIntegerField)
become named table constraints, so the schema guard can name a missing one.

Frozen: no project code is imported; the SQL below is what this migration means forever."""

from django.core.management.base import CommandError
from django.db import migrations, models

LOG = "ai_model_usage_log"
# Each rule, as SQL that is true for a row breaking it.
BROKEN = {
    "negative tokens": "prompt_tokens < 0 OR completion_tokens < 0 OR cached_tokens < 0 OR reasoning_tokens < 0",
    "a negative cost": "cost < 0",
    "a negative response time": "response_time < 0",
    "cached_tokens above prompt_tokens": "cached_tokens > prompt_tokens",
    "reasoning_tokens above completion_tokens": "reasoning_tokens > completion_tokens",
}


def refuse_rows_that_break_the_rules(apps, schema_editor):
    """A clear message instead of the database's, naming the rows a person must look at first."""
    problems = []
    with schema_editor.connection.cursor() as cursor:
        for rule, condition in BROKEN.items():
            cursor.execute(f"SELECT count(*), min(id), max(id) FROM {LOG} WHERE {condition}")  # noqa: S608
            count, first, last = cursor.fetchone()
            if count:
                problems.append(f"{count} row(s) with {rule} (ids {first} to {last})")
    if problems:
        raise CommandError(
            f"usage.0009 adds CHECK constraints to {LOG}, but it holds rows that break them: "
            + "; ".join(problems)
            + ". Correct or delete those rows (then run `python manage.py usage_reconcile`), and migrate again."
        )


def foreign_key_checks_now(apps, schema_editor):
    """PostgreSQL cannot ALTER a table with deferred foreign-key checks pending (rows written earlier
    in the same transaction, as when tests migrate): run those checks first."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _check(name: str, condition: models.Q) -> migrations.AddConstraint:
    return migrations.AddConstraint(
        model_name="usagelog", constraint=models.CheckConstraint(condition=condition, name=f"{LOG}_{name}")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0008_usage_log_gap"),
    ]

    operations = [
        migrations.RunPython(foreign_key_checks_now, migrations.RunPython.noop, elidable=True),
        migrations.RunPython(refuse_rows_that_break_the_rules, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="usagelog",
            name="cached_tokens",
            field=models.IntegerField(default=0, help_text="Prompt tokens served from the provider's cache."),
        ),
        migrations.AlterField(
            model_name="usagelog",
            name="completion_tokens",
            field=models.IntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="usagelog",
            name="prompt_tokens",
            field=models.IntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="usagelog",
            name="reasoning_tokens",
            field=models.IntegerField(default=0, help_text="Completion tokens spent on reasoning."),
        ),
        _check("prompt_tokens_check", models.Q(prompt_tokens__gte=0)),
        _check("completion_tokens_check", models.Q(completion_tokens__gte=0)),
        _check("cached_tokens_check", models.Q(cached_tokens__gte=0)),
        _check("reasoning_tokens_check", models.Q(reasoning_tokens__gte=0)),
        _check("cost_check", models.Q(cost__isnull=True) | models.Q(cost__gte=0)),
        _check("response_time_check", models.Q(response_time__isnull=True) | models.Q(response_time__gte=0)),
        _check("cached_within_prompt", models.Q(cached_tokens__lte=models.F("prompt_tokens"))),
        _check("reasoning_within_completion", models.Q(reasoning_tokens__lte=models.F("completion_tokens"))),
        migrations.RunPython(migrations.RunPython.noop, foreign_key_checks_now, elidable=True),
    ]
