"""Issue 17: the log records the API key that sent each call (group_by=api_key). Rows stored before
keep none. PROTECT and no index: keys are revoked, never deleted, and a breakdown scans its window."""

import django.db.models.deletion
from django.db import migrations, models


def foreign_key_checks_now(apps, schema_editor):
    """PostgreSQL cannot ALTER a table with deferred foreign-key checks pending (rows written earlier
    in the same transaction, as when tests migrate): run those checks first."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0020_usage_log_user_purpose_indexes"),
    ]

    operations = [
        migrations.RunPython(foreign_key_checks_now, migrations.RunPython.noop, elidable=True),
        migrations.AddField(
            model_name="usagelog",
            name="api_key",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="The API key that sent the call (empty: recorded from Python, or by a staff login).",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="usage.apikey",
                verbose_name="API key",
            ),
        ),
        # Backwards the column is dropped first: the same checks before that ALTER.
        migrations.RunPython(migrations.RunPython.noop, foreign_key_checks_now, elidable=True),
    ]
